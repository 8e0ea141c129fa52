"""``debias``: a parent checkpoint and the user's data → debiased children, each evaluated beside the parent.

For each variant of the :class:`DebiasSpec` one child is made (surgery, fine-tuning or retraining), stored in
the backend's content-addressed cache under a key of the parent's SHA-256, the data's hashes, the variant, mode,
recipe and seed (:func:`child_key`), so a run that was interrupted — the app's page reloaded, the CLI started
again — picks up every child already made. Each child is then evaluated on the held-out slices or subjects
(Dice, and how much its prediction differs from the parent's) and analysed with the parent under the default
method (:func:`explorer.analysis.analyze`, cached as any analysis), whose ``channel_asymmetry`` the report shows
with its CI.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..analysis import analyze, default_cache
from ..cache.store import ResultCache, make_key
from ..device import describe_device, select_device
from ..errors import InputError
from ..models.build import first_conv, first_conv_shares
from ..models.checkpoints import Checkpoint, CheckpointMeta, checkpoint_bytes, load_checkpoint
from ..spec import RunSpec
from ..stats.scan import dice
from ..training.subjects import train_subjects
from ..training.train import FitHooks, Recipe, TrainSpec, fit, seed_everything, train
from .data import DebiasData
from .spec import DebiasSpec
from .surgery import check_mode, conv_key, surgery, tie_gradients

__all__ = [
    "Progress",
    "DEBIAS_VERSION",
    "RECOVERY_MARGIN",
    "Child",
    "DebiasResult",
    "check_inputs",
    "child_key",
    "children_cached",
    "child_name",
    "debias",
]


Progress = Callable[[float, str], None]
#: Bump when anything changes the children a run makes; part of every child's cache key.
DEBIAS_VERSION = "1"
#: Fine-tuning counts as having recovered the parent's held-out Dice within this margin.
RECOVERY_MARGIN = 0.02


@dataclass(frozen=True, eq=False)
class Child:
    """A debiased checkpoint: the loaded checkpoint, the ``.safetensors`` bytes it came from and its record."""

    checkpoint: Checkpoint
    blob: bytes
    record: dict[str, Any]

    @property
    def file_name(self) -> str:
        return f"{self.checkpoint.name}.safetensors"


@dataclass(frozen=True, eq=False)
class DebiasResult:
    """A parent, its children and the report (``debias.json``'s content)."""

    parent: Checkpoint
    children: tuple[Child, ...]
    report: dict[str, Any]


def check_inputs(parent: Checkpoint, data: DebiasData, spec: DebiasSpec) -> None:
    """Everything that can be refused, refused before any work.

    Raises:
        InputError: no first convolution, offsets without a mirrored pair for the symmetric mode, a training
            variant without a mask, or a checkpoint the registry cannot rebuild (each names the file).
    """
    conv_key(parent)
    check_mode(spec.mode, parent.meta.offsets, source=parent.name)
    if spec.trains and not data.has_mask:
        variants = ", ".join(v for v in spec.variants if v != "surgery")
        raise InputError(
            data.source,
            f"no mask for the {variants} variant(s)",
            "a mask on the volume's grid (or a manifest with masks), or the surgery variant only",
        )
    try:
        parent.build_model("cpu")
    except InputError:
        raise  # already names the file and what was expected
    except Exception as exc:  # noqa: BLE001 - smp raises many types; one message naming the file
        raise InputError(
            parent.name,
            f"the registry cannot rebuild this checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})",
            "a checkpoint of an smp architecture",
        ) from exc


def child_key(parent: Checkpoint, data: DebiasData, spec: DebiasSpec, variant: str, recipe: Recipe | None) -> str:
    """The cache key of one child: parent SHA-256, data hashes, variant, mode, recipe, seed and version."""
    return make_key(
        {
            "parent": parent.sha256,
            "data": data.key(),
            **spec.variant_record(variant),
            "recipe": recipe.to_dict() if recipe is not None else None,
            "debias": DEBIAS_VERSION,
        }
    )


def children_cached(parent: Checkpoint, data: DebiasData, spec: DebiasSpec, store: ResultCache | None = None) -> bool:
    """Whether every child of ``spec`` is in the cache on disk (a reloaded page or a re-run finds them there).

    Raises:
        InputError: a recipe that cannot train.
    """
    store = store or default_cache().subcache("debias")
    if not store.disk:
        return False
    keys = [
        child_key(parent, data, spec, v, spec.recipe_for(parent.meta, v)[0] if v != "surgery" else None)
        for v in spec.variants
    ]
    return all(store.entry_dir(key).is_dir() for key in keys)


def child_name(parent: Checkpoint, spec: DebiasSpec, variant: str) -> str:
    """``<parent>-<variant>-<mode>`` (retrain: ``<parent>-retrain-<strategy>``)."""
    return f"{parent.name}-{variant}-{spec.retrain_strategy if variant == 'retrain' else spec.mode}"


def debias(
    parent: Checkpoint,
    data: DebiasData,
    spec: DebiasSpec,
    *,
    progress: Progress | None = None,
    cache: ResultCache | bool | None = None,
    analyse: bool = True,
    command: str | None = None,
    analysis: RunSpec | None = None,
) -> DebiasResult:
    """Make ``spec``'s children of ``parent`` on ``data`` and compare them with it.

    Args:
        parent: the checkpoint to debias.
        data: the volume (and mask) or the manifest's subjects.
        spec: variants, mode, epochs and recipe overrides.
        progress: ``progress(fraction, message)``; it may raise to cancel (between batches).
        cache: a :class:`ResultCache` for the children, None for the default cache's ``debias`` part, False
            for none.
        analyse: measure ``channel_asymmetry`` under the default method (parent and children).
        command: the command line, recorded in each child.
        analysis: how ``channel_asymmetry`` is measured (default ``RunSpec(device=spec.device)``: the default
            method with the reversed pass); the app passes its own (maps kept) so the views reuse the results.

    Returns:
        The :class:`DebiasResult`.

    Raises:
        InputError: as :func:`check_inputs`, and bad recipes or data too small for the splits.
    """
    report = progress or (lambda fraction, message: None)
    analysis = analysis or RunSpec(device=spec.device)
    check_inputs(parent, data, spec)
    store = default_cache().subcache("debias") if cache is None else (cache or None)
    dev = select_device(spec.device)
    steps = len(spec.variants) + (1 if analyse else 0) + 1
    report(0.0, f"{parent.name}: held-out Dice")
    parent_model = parent.build_model(dev)
    parent_dice = data.heldout_dice(parent_model, parent.meta, dev)
    parent_pred = data.predictions(parent_model, parent.meta, dev)
    children = []
    for i, variant in enumerate(spec.variants):

        def sub(fraction: float, message: str, i: int = i) -> None:
            report((i + 1 + fraction) / steps, message)

        children.append(_child(parent, data, spec, variant, store, sub, command, (parent_dice, parent_pred)))
    parent_record = {
        "name": parent.name,
        "sha256": parent.sha256,
        "variant": "parent",
        "strategy": parent.meta.strategy,
        "heldout_dice": parent_dice,
        "first_conv_share": _shares(parent),
        "seconds": parent.meta.training.get("seconds"),
        "seconds_what": "training, as recorded in the parent",
    }
    records = [parent_record, *[c.record for c in children]]
    if analyse:
        _analyse(parent, children, records, data, analysis, lambda f, m: report((steps - 1 + f) / steps, m))
    report(1.0, "done")
    result = {
        "parent": parent_record,
        "children": [c.record for c in children],
        "inputs": {
            "parent": {"name": parent.name, "sha256": parent.sha256, "seed": parent.meta.recipe.get("seed")},
            "data": data.record(),
            "spec": spec.record(),
            "analysis": analysis.record(),
            "recovery_margin": RECOVERY_MARGIN,
            "version": __version__,
            "command": command,
        },
    }
    return DebiasResult(parent=parent, children=tuple(children), report=result)


def _child(
    parent: Checkpoint,
    data: DebiasData,
    spec: DebiasSpec,
    variant: str,
    store: ResultCache | None,
    report: Progress,
    command: str | None,
    baseline: tuple[float | None, np.ndarray],
) -> Child:
    """One child, from the cache when it was made before, else made (on ``spec.device``), evaluated and cached;
    ``baseline`` is the parent's held-out Dice and prediction, which the child is compared with."""
    parent_dice, parent_pred = baseline
    dev = select_device(spec.device)
    recipe, source = spec.recipe_for(parent.meta, variant) if variant != "surgery" else (None, None)
    key = child_key(parent, data, spec, variant, recipe)
    name = child_name(parent, spec, variant)
    entry = store.get(key) if store is not None else None
    if entry is not None:
        report(1.0, f"{name}: from cache")
        blob = entry.arrays["checkpoint"].tobytes()
        return Child(load_checkpoint(blob, name=name), blob, {**entry.meta["record"], "from_cache": True})
    report(0.0, f"{name}: {variant}")
    started = time.perf_counter()
    model, meta, training = _make(parent, data, spec, variant, recipe, dev, report)
    model = model.half().float().to(dev).eval()  # what the float16 file holds: evaluate exactly that
    seconds = time.perf_counter() - started
    child_dice = data.heldout_dice(model, meta, dev)
    pred = data.predictions(model, meta, dev)
    record = {
        "name": name,
        "file": f"{name}.safetensors",
        "variant": variant,
        "mode": spec.mode,
        "strategy": meta.strategy,
        "heldout_dice": child_dice,
        "dice_change": None if child_dice is None or parent_dice is None else child_dice - parent_dice,
        "prediction_dice_vs_parent": dice(pred, parent_pred),
        "changed_fraction": float(np.mean(pred != parent_pred)),
        "first_conv_share": {str(k): v for k, v in first_conv_shares(first_conv(model), meta.offsets).items()},
        "seconds": round(seconds, 2),
        "seconds_what": "making the child (surgery or training)",
        "recipe": recipe.to_dict() if recipe is not None else None,
        "recipe_source": source,
        **training,
    }
    if variant == "finetune" and child_dice is not None and parent_dice is not None:
        gap = parent_dice - child_dice
        record["recovered"] = bool(gap <= RECOVERY_MARGIN)
        record["recovery"] = (
            f"held-out Dice within {RECOVERY_MARGIN} of the parent ({child_dice:.4f} vs {parent_dice:.4f})"
            if gap <= RECOVERY_MARGIN
            else f"held-out Dice {gap:.4f} below the parent's ({child_dice:.4f} vs {parent_dice:.4f}), "
            f"{gap - RECOVERY_MARGIN:.4f} short of the {RECOVERY_MARGIN} margin"
        )
    provenance = {
        "parent": {
            "name": parent.name,
            "sha256": parent.sha256,
            "strategy": parent.meta.strategy,
            "seed": parent.meta.recipe.get("seed"),
        },
        **spec.variant_record(variant),
        "data": data.record(),
        "recipe": record["recipe"],
        "recipe_source": source,
        "seconds": record["seconds"],
        "device": describe_device(dev),
        "command": command,
        "debias_version": DEBIAS_VERSION,
    }
    meta = dataclasses.replace(
        meta,
        training={**meta.training, "debias": provenance},
        metrics={**meta.metrics, "val_dice": child_dice, "parent_val_dice": parent_dice},
    )
    blob = checkpoint_bytes(model, meta)
    if store is not None:
        store.put(key, {"checkpoint": np.frombuffer(blob, dtype=np.uint8)}, {"record": record})
    return Child(load_checkpoint(blob, name=name), blob, {**record, "from_cache": False})


def _make(
    parent: Checkpoint,
    data: DebiasData,
    spec: DebiasSpec,
    variant: str,
    recipe: Recipe | None,
    dev: torch.device,
    report: Progress,
) -> tuple[torch.nn.Module, CheckpointMeta, dict[str, Any]]:
    """The child's model, its metadata (before provenance) and what its training did."""

    def on_batch(done: int, total: int) -> None:
        report(done / max(total, 1), f"{variant}: batch {done} of {total}")

    if variant == "surgery":
        cut = surgery(parent, spec.mode)
        return cut.build_model(dev), parent.meta, {}
    if recipe is None:
        raise RuntimeError(f"no recipe for the {variant} variant")
    if variant == "retrain":
        m = parent.meta
        trained = TrainSpec(
            strategy=spec.retrain_strategy,
            arch=m.arch,
            encoder=m.encoder,
            offsets=m.offsets,
            axis=m.axis,
            normalisation=m.normalisation,
            arch_kwargs=m.arch_kwargs,
            recipe=recipe,
            device=spec.device,
        )
        hooks = FitHooks(progress=False, on_batch=on_batch)
        result = (
            train(data.study.volume, data.study.mask, trained, hooks=hooks)
            if data.study is not None
            else train_subjects(data.train, data.test, trained, manifest=data.manifest, hooks=hooks)
        )
        return result.model.to(dev), result.meta, {"epochs_run": len(result.losses), "train_loss": result.losses}
    return _finetune(parent, data, spec, recipe, dev, on_batch)


def _finetune(
    parent: Checkpoint,
    data: DebiasData,
    spec: DebiasSpec,
    recipe: Recipe,
    dev: torch.device,
    on_batch: Callable[[int, int], None],
) -> tuple[torch.nn.Module, CheckpointMeta, dict[str, Any]]:
    """The surgery, fine-tuned with its first conv kept tied; the weights of the best early-stopping epoch."""
    seed_everything(recipe.seed)
    model = surgery(parent, spec.mode).build_model(dev)
    x, y, score, split = data.training(parent.meta, recipe, dev)
    best = {"score": score(model) if score else None, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    scores = [best["score"]]

    def on_epoch(epoch: int, loss: float) -> bool:
        value = score(model) if score else None
        scores.append(value)
        if value is None or value > best["score"]:
            best.update(score=value, epoch=epoch + 1, state=copy.deepcopy(model.state_dict()))
        return value is not None and epoch + 1 - best["epoch"] >= spec.patience

    handle = tie_gradients(first_conv(model), parent.meta.offsets, spec.mode)
    try:
        losses = fit(
            model,
            x,
            y,
            recipe,
            zflip=False,
            device=dev,
            hooks=FitHooks(
                progress=False,
                frozen=model.encoder if spec.freeze_encoder else None,
                on_batch=on_batch,
                on_epoch=on_epoch,
            ),
        ).losses
    finally:
        handle.remove()
    model.load_state_dict(best["state"])
    training = {
        "epochs_run": len(losses),
        "best_epoch": best["epoch"],
        "train_loss": losses,
        "early_stopping_dice": scores,
        "split": split,
        "early_stopping": f"best early-stopping Dice of epochs 0..{len(losses)} (0 = the surgery), "
        f"patience {spec.patience}"
        if score
        else "none (one training subject)",
    }
    meta = dataclasses.replace(parent.meta, recipe=recipe.to_dict())
    return model, meta, training


def _shares(ckpt: Checkpoint) -> dict[str, float]:
    return {str(k): v for k, v in first_conv_shares(ckpt.first_conv_weight(), ckpt.meta.offsets).items()}


def _analyse(
    parent: Checkpoint, children: list[Child], records: list[dict], data: DebiasData, spec: RunSpec, report: Progress
) -> None:
    """Add each model's ``channel_asymmetry`` (mean, CI) per analysed scan to its record."""
    studies = data.studies()
    ckpts = [parent, *[c.checkpoint for c in children]]
    for record in records:
        record["channel_asymmetry"] = {}
    for j, (label, study) in enumerate(studies.items()):
        analysis = analyze(
            study,
            ckpts,
            spec,
            progress=lambda f, m, j=j, label=label: report((j + f) / len(studies), f"analyse {label}: {m}"),
        )
        for record, stats in zip(records, analysis.model_stats.values(), strict=True):
            split = stats.channel_asymmetry
            record["channel_asymmetry"][label] = (
                {"mean": split.mean, "ci95": list(split.ci95), "p": split.p}
                if split is not None
                else dict.fromkeys(("mean", "ci95", "p"))
            )
            record.setdefault("asymmetry_index", {})[label] = stats.asymmetry_index.mean
