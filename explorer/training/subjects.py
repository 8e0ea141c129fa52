"""Training on several subjects and evaluating on held-out subjects (a subject-level split from a manifest).

The unit of the split is the subject (docs/cohort.md, "Statistics"): every slice of a training subject is a training
window, every slice of a test subject is held out, so no held-out subject is ever seen in training.

Shapes: each subject's normalised stack ``(S_i, H_i, W_i)`` is padded with its own minimum (the fill
:func:`explorer.attribution.windows.iter_windows` uses) to the largest ``H, W`` among the training subjects, so that all
training windows share one padded shape ``(N, C, H', W')``; test subjects are predicted one at a time at
their own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribution.windows import iter_windows, pad_to_multiple
from ..cohort.manifest import Entry, read_manifest
from ..device import select_device
from ..errors import InputError
from ..io.files import file_sha256
from ..io.normalise import channel_stats_for
from ..models.checkpoints import CheckpointMeta, save_checkpoint
from ..stats.scan import dice
from ..study import Study
from .train import FitHooks, Recipe, TrainResult, TrainSpec, predict

__all__ = [
    "Subject",
    "split_rows",
    "load_subjects",
    "validation_split",
    "heldout_dice",
    "train_subjects",
    "train_manifest_checkpoint",
]


@dataclass(frozen=True, eq=False)
class Subject:
    """One subject of a cohort: its id and its study (volume and mask)."""

    id: str
    study: Study

    def record(self) -> dict[str, str | None]:
        """Id and content hashes (the checkpoint's record of the split)."""
        return {
            "subject": self.id,
            **{f"{k}_sha256": v for k, v in self.study.key().items()},
            "volume": self.study.volume.source,
        }


def split_rows(rows: Sequence[Entry], column: str, *, source: str = "manifest") -> tuple[list[Entry], list[Entry]]:
    """The ``train`` and ``test`` rows by the value of ``column`` (other values are ignored).

    Raises:
        InputError: the column is missing, a row lacks a mask, or either side is empty.
    """
    if any(column not in row.extra for row in rows):
        raise InputError(source, f"no column {column!r} in every row", "a split column with train/test values")
    missing = [row.subject for row in rows if row.mask is None]
    if missing:
        raise InputError(source, f"subjects {missing} have no mask", "a mask for every subject used in training")
    parts = {value: [row for row in rows if row.extra[column] == value] for value in ("train", "test")}
    if not parts["train"] or not parts["test"]:
        raise InputError(
            source,
            f"{len(parts['train'])} train and {len(parts['test'])} test subjects",
            f"at least one subject with {column}=train and one with {column}=test",
        )
    return parts["train"], parts["test"]


def load_subjects(rows: Sequence[Entry]) -> list[Subject]:
    """Load every row's volume and mask (checked to share a grid).

    Raises:
        InputError: as :meth:`explorer.study.Study.load`.
    """
    return [Subject(row.subject, Study.load(row.volume, row.mask)) for row in rows]


def _training_windows(
    subjects: Sequence[Subject],
    offsets: Sequence[int],
    axis: str,
    normalisation: str,
    stats: tuple[np.ndarray, np.ndarray] | None,
    stride: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    stacks = [(s.study.slices(axis, normalisation), s.study.mask_slices(axis)) for s in subjects]
    height = max(stack.shape[1] for stack, _ in stacks)
    width = max(stack.shape[2] for stack, _ in stacks)
    xs, ys = [], []
    for stack, labels in stacks:
        dh, dw = height - stack.shape[1], width - stack.shape[2]
        widths = ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))
        stack = np.pad(stack, widths, constant_values=float(stack.min()))
        used = np.arange(0, stack.shape[0], stride)
        xs += [b.x for b in iter_windows(stack, offsets, batch_size=64, slices=used, channel_stats=stats)]
        ys.append(pad_to_multiple(np.pad(labels[used], widths).astype(np.float32), 32)[0][:, None])
    return torch.cat(xs), torch.from_numpy(np.concatenate(ys))


def validation_split(train: Sequence[Subject], recipe: Recipe) -> tuple[list[Subject], list[Subject]]:
    """The subjects to fit and, with early stopping, ``recipe.val_subjects`` held out for validation.

    The validation subjects are drawn with ``numpy.random.default_rng(recipe.seed)``; without early stopping
    (``recipe.patience`` None) every subject is fitted.

    Raises:
        InputError: fewer than ``val_subjects + 1`` training subjects.
    """
    if recipe.patience is None:
        return list(train), []
    if len(train) <= recipe.val_subjects:
        raise InputError(
            "split",
            f"{len(train)} training subject(s) for {recipe.val_subjects} validation subject(s)",
            "more training subjects than validation subjects (early stopping holds some out)",
        )
    held = set(np.random.default_rng(recipe.seed).choice(len(train), recipe.val_subjects, replace=False).tolist())
    return [s for i, s in enumerate(train) if i not in held], [s for i, s in enumerate(train) if i in held]


def heldout_dice(
    model: torch.nn.Module, subjects: Sequence[Subject], meta: CheckpointMeta, device: str | torch.device = "auto"
) -> dict[str, float]:
    """Whole-volume Dice of ``model`` on each subject (all slices along the checkpoint's axis).

    Returns:
        ``{subject id: Dice}`` in the order given.
    """
    dev = device if isinstance(device, torch.device) else select_device(device)
    model = model.to(dev)
    stats = channel_stats_for(meta.normalisation, len(meta.offsets))
    out = {}
    for subject in subjects:
        stack, labels = subject.study.slices(meta.axis, meta.normalisation), subject.study.mask_slices(meta.axis)
        pred = predict(model, stack, meta.offsets, np.arange(stack.shape[0]), stats, dev)
        out[subject.id] = dice(pred, labels)
    return out


def train_subjects(
    train: Sequence[Subject],
    test: Sequence[Subject],
    spec: TrainSpec,
    *,
    manifest: dict[str, Any] | None = None,
    hooks: FitHooks | None = None,
    command: str | None = None,
) -> TrainResult:
    """Initialise a model as ``spec`` says, train it on every slice of ``train``, evaluate it on ``test``.

    Args:
        train, test: disjoint subjects with masks (training and held-out).
        spec: the model, window, strategy, recipe (``recipe.val_fraction`` is unused) and device.
        manifest: the manifest's record (name, SHA-256, split column), stored in the metadata.
        hooks, command: as :func:`explorer.training.train.train`.

    Returns:
        The trained model (eval, CPU) and its metadata: ``training.split`` lists the fitted, test and (with
        early stopping) validation subjects with their content hashes; ``training.epochs`` the epochs reached
        (and the best epoch); ``metrics.heldout_dice`` the Dice per test subject and ``val_dice`` their mean.

    Raises:
        InputError: a subject on both sides, too few training subjects for the validation split, and as
            :func:`explorer.training.train.train`.
    """
    recipe, offsets, axis = spec.recipe, spec.offsets, spec.axis
    both = {s.study.volume.sha256 for s in train} & {s.study.volume.sha256 for s in test}
    if both or {s.id for s in train} & {s.id for s in test}:
        raise InputError("split", "a subject (or an identical volume) is both in train and test", "disjoint subjects")
    dev = select_device(spec.device)
    model, init = spec.initialised()
    fitted, held = validation_split(train, recipe)
    stats = channel_stats_for(spec.normalisation, len(offsets))
    x_all, y_all = _training_windows(fitted, offsets, axis, spec.normalisation, stats, recipe.slice_stride)
    val = _training_windows(held, offsets, axis, spec.normalisation, stats, recipe.slice_stride) if held else None
    log = spec.fit(model, (x_all, y_all), dev, val=val, hooks=hooks)
    split = {
        "unit": "subject",
        "train": [s.record() for s in fitted],
        "test": [s.record() for s in test],
        "train_slices": len(x_all),
        **({"val": [s.record() for s in held]} if held else {}),
    }
    data = {"manifest": manifest, "split": split, "epochs": log.record(recipe.epochs)}
    meta = spec.meta(model, init, log, dev, command, data)
    per_subject = heldout_dice(model, test, meta, dev)
    meta.metrics.update(
        heldout_dice=per_subject, val_dice=float(np.mean(list(per_subject.values()))), train_loss=log.losses
    )
    return TrainResult(model=model.cpu().eval(), meta=meta, losses=log.losses)


def train_manifest_checkpoint(
    manifest: str | Path,
    out: str | Path,
    spec: TrainSpec,
    *,
    split_column: str = "split",
    hooks: FitHooks | None = None,
    command: str | None = None,
) -> TrainResult:
    """Read ``manifest``, train on its ``train`` subjects, evaluate on its ``test`` subjects, save to ``out``.

    Raises:
        InputError: as :func:`explorer.cohort.manifest.read_manifest`, :func:`split_rows`, :func:`train_subjects`
            and :func:`explorer.models.checkpoints.save_checkpoint`.
    """
    if Path(out).suffix != ".safetensors":
        raise InputError(out, "output name does not end in .safetensors", "e.g. --out model.safetensors")
    train_rows, test_rows = split_rows(read_manifest(manifest), split_column, source=str(manifest))
    record = {"name": Path(manifest).name, "sha256": file_sha256(manifest), "split_column": split_column}
    result = train_subjects(
        load_subjects(train_rows), load_subjects(test_rows), spec, manifest=record, hooks=hooks, command=command
    )
    save_checkpoint(result.model, result.meta, out)
    return result
