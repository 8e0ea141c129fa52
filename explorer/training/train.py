"""Training a 2D+ checkpoint on one volume and mask, with one initialisation strategy.

Shapes: the normalised volume is sliced to a stack ``(S, H, W)`` (:meth:`Volume.stack`); training windows
are ``(N, C, H', W')`` padded to multiples of 32, labels ``(N, 1, H', W')``.

Validation is a contiguous block of slices in the middle of the mask's extent, separated from every
training slice by a gap of ``2k + 1`` slices (``k`` = largest offset): no input slice of a training window is
an input slice of a validation window, plus one buffer slice. Dice on that block goes into the metadata.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..attribution.windows import iter_windows, pad_to_multiple, validate_offsets
from ..config import check_slices
from ..device import describe_device, select_device
from ..errors import InputError
from ..io.normalise import channel_stats_for
from ..io.volume import Mask, Volume, axis_index
from ..models.build import DEFAULT_ARCH_KWARGS, build_model, first_conv_shares
from ..models.checkpoints import CheckpointMeta, save_checkpoint
from ..models.strategies import get_strategy
from ..stats.scan import dice
from ..study import Study
from .early_stopping import EarlyStopping, validation_loss
from .losses import build_loss

__all__ = [
    "Recipe",
    "Split",
    "TrainResult",
    "TrainSpec",
    "check_recipe",
    "split_slices",
    "seed_everything",
    "FitHooks",
    "FitLog",
    "fit",
    "predict",
    "train",
    "train_checkpoint",
]


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (stored in the checkpoint); Adam. ``loss`` is a key of
    :data:`explorer.training.losses.LOSSES` (checkpoints from before the option record ``"dice+bce"``, i.e.
    ``bce-dice``) and ``loss_params`` its parameters (defaults filled in). ``slice_stride`` = k trains on every k-th
    training slice (neighbouring slices are nearly alike; k > 1 trades data for time on a CPU). ``patience`` = p
    turns on early stopping (subject-level training only): ``val_subjects`` of the training subjects, drawn with
    ``seed``, are held out for a validation loss after every epoch; after ``warmup`` unwatched epochs, training
    stops p epochs after the best one (``epochs`` is then the maximum) and the best epoch's weights are kept."""

    epochs: int = 12
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.2
    inplane_flips: bool = True
    loss: str = "bce-dice"
    loss_params: dict[str, float] = field(default_factory=dict)
    slice_stride: int = 1
    patience: int | None = None
    val_subjects: int = 1
    warmup: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, including the loss (with resolved parameters) and optimiser names. Without early
        stopping (``patience`` None) the early-stopping fields are left out, so older records stay equal."""
        out = {**asdict(self), "loss_params": build_loss(self.loss, self.loss_params)[1], "optimizer": "adam"}
        if self.patience is None:
            del out["patience"], out["val_subjects"], out["warmup"]
        return out


@dataclass(frozen=True)
class Split:
    """Slice indices for training and validation, and the gap (in slices) that separates them."""

    train: np.ndarray
    val: np.ndarray
    gap: int


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained model (eval mode, CPU), its metadata and the mean training loss per epoch."""

    model: torch.nn.Module
    meta: CheckpointMeta
    losses: list[float]


@dataclass(frozen=True)
class TrainSpec:
    """What to train, shared by :func:`train` (one volume) and :func:`explorer.training.subjects.train_subjects` (a
    manifest's subjects) as :class:`explorer.spec.RunSpec` is shared by analyses: validated once, when built.

    Attributes:
        strategy: a name from :data:`explorer.models.strategies.STRATEGIES`.
        arch, encoder, arch_kwargs: the model (``arch_kwargs`` default: :data:`DEFAULT_ARCH_KWARGS`).
        offsets, axis, normalisation: the window, the slicing axis and the intensity preset.
        recipe: hyper-parameters, seed and early stopping.
        weights: explicit ImageNet weight file for the ``imagenet*`` strategies.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``mps``.

    Raises:
        InputError: bad offsets, an unknown strategy or loss, or a recipe that cannot train.
    """

    strategy: str
    arch: str = "Unet"
    encoder: str = "mobilenet_v2"
    offsets: Sequence[int] = (-1, 0, 1)
    axis: str = "axial"
    normalisation: str = "zscore"
    arch_kwargs: dict[str, Any] | None = None
    recipe: Recipe = field(default_factory=Recipe)
    weights: str | Path | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", validate_offsets(self.offsets, source="--offsets"))
        get_strategy(self.strategy)
        check_recipe(self.recipe)
        kwargs = DEFAULT_ARCH_KWARGS.get(self.arch, {}) if self.arch_kwargs is None else self.arch_kwargs
        object.__setattr__(self, "arch_kwargs", dict(kwargs))

    def initialised(self) -> tuple[torch.nn.Module, Any]:
        """The model built with the recipe's seed and initialised by the strategy, and the strategy's record."""
        seed_everything(self.recipe.seed)
        model = build_model(
            arch=self.arch, encoder=self.encoder, in_channels=len(self.offsets), classes=1, **self.arch_kwargs
        )
        init = get_strategy(self.strategy).apply(model, self.offsets, encoder=self.encoder, weights=self.weights)
        return model, init

    def fit(
        self,
        model: torch.nn.Module,
        windows: tuple[torch.Tensor, torch.Tensor],
        device: torch.device,
        *,
        val: tuple[torch.Tensor, torch.Tensor] | None = None,
        hooks: FitHooks | None = None,
    ) -> FitLog:
        """:func:`fit` on ``windows`` (inputs, labels) with this spec's recipe and its strategy's augmentation, the
        progress bar labelled with the strategy."""
        x_all, y_all = windows
        zflip = get_strategy(self.strategy).augment_zflip
        labelled = replace(hooks or FitHooks(), desc=f"train {self.strategy}")
        return fit(model, x_all, y_all, self.recipe, zflip=zflip, device=device, val=val, hooks=labelled)

    def meta(
        self,
        model: torch.nn.Module,
        init: Any,
        log: FitLog,
        device: torch.device,
        command: str | None,
        data: dict[str, Any],
        metrics: dict[str, Any] | None = None,
    ) -> CheckpointMeta:
        """The checkpoint metadata of ``model`` trained by this spec: ``training`` holds ``data`` (what it was
        trained on and how it was split), then what every trained checkpoint records (axis, initialisation,
        final first-conv shares, device, seconds, command)."""
        training = {
            **data,
            "axis_index": axis_index(self.axis),
            "init": init.to_dict(),
            "first_conv_share_final": {str(k): v for k, v in first_conv_shares(model, self.offsets).items()},
            "device": describe_device(device),
            "seconds": round(log.seconds, 1),
            "command": command,
        }
        return CheckpointMeta(
            arch=self.arch,
            encoder=self.encoder,
            classes=1,
            offsets=self.offsets,
            strategy=self.strategy,
            normalisation=self.normalisation,
            axis=self.axis,
            arch_kwargs=self.arch_kwargs,
            recipe=self.recipe.to_dict(),
            training=training,
            metrics=metrics or {},
        )


def check_recipe(recipe: Recipe) -> None:
    """Reject a recipe that cannot train.

    Raises:
        InputError: an unknown loss, fewer than 1 epoch, a batch below 2, a slice stride below 1, or (with
            early stopping) a patience or a number of validation subjects below 1, or a warm-up outside
            0 .. epochs − 1.
    """
    build_loss(recipe.loss, recipe.loss_params)
    if recipe.epochs < 1 or recipe.batch_size < 2 or recipe.slice_stride < 1:
        raise InputError(
            "recipe",
            f"epochs={recipe.epochs}, batch_size={recipe.batch_size}, slice_stride={recipe.slice_stride}",
            "at least 1 epoch, a batch of at least 2, stride >= 1",
        )
    if recipe.patience is not None and (
        recipe.patience < 1 or recipe.val_subjects < 1 or not 0 <= recipe.warmup < recipe.epochs
    ):
        raise InputError(
            "recipe",
            f"patience={recipe.patience}, val_subjects={recipe.val_subjects}, "
            f"warmup={recipe.warmup}, epochs={recipe.epochs}",
            "a patience of at least 1 epoch, at least 1 validation subject and a warm-up of 0 to epochs − 1",
        )


def split_slices(mask_stack: np.ndarray, offsets: Sequence[int], val_fraction: float = 0.2) -> Split:
    """Held-out contiguous block centred in the mask's extent, with a ``2k + 1`` slice gap on each side.

    Raises:
        InputError: an empty mask, a bad fraction, or too few slices for a block, its gaps and training.
    """
    if not 0 < val_fraction < 1:
        raise InputError("val_fraction", f"{val_fraction}", "a fraction between 0 and 1")
    filled = np.flatnonzero(mask_stack.reshape(mask_stack.shape[0], -1).any(axis=1))
    if filled.size == 0:
        raise InputError("mask", "the mask is empty", "a mask with foreground voxels")
    k = max(abs(int(o)) for o in offsets)
    gap = 2 * k + 1
    n_val = max(1, int(round(val_fraction * (filled[-1] - filled[0] + 1))))
    start = (filled[0] + filled[-1] + 1) // 2 - n_val // 2
    val = np.arange(start, start + n_val)
    z = np.arange(mask_stack.shape[0])
    train = z[(z < start - gap) | (z >= start + n_val + gap)]
    if train.size < 2:
        raise InputError(
            "volume",
            f"{mask_stack.shape[0]} slices leave {train.size} for training after a "
            f"{n_val}-slice validation block and {gap}-slice gaps",
            "a volume with more slices",
        )
    return Split(train=train, val=val, gap=gap)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model initialisation draws from them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _windows(
    stack: np.ndarray, offsets: Sequence[int], slices: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None
) -> torch.Tensor:
    return torch.cat([b.x for b in iter_windows(stack, offsets, batch_size=64, slices=slices, channel_stats=stats)])


def _augment(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, *, flips: bool, zflip: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random in-plane flips (image and label) and, for zflip, window reversal (image only), per sample."""
    x, y = x.clone(), y.clone()
    coins = torch.rand(x.shape[0], 3, generator=gen) < 0.5
    for i in range(x.shape[0]):
        for dim, on in ((2, flips and coins[i, 0]), (1, flips and coins[i, 1])):
            if on:
                x[i], y[i] = x[i].flip(dim), y[i].flip(dim)
        if zflip and coins[i, 2]:
            x[i] = x[i].flip(0)  # channel order reversed: offset -k <-> +k; the label stays
    return x, y


@dataclass(frozen=True)
class FitHooks:
    """How :func:`fit` reports and what it leaves alone, beyond its recipe.

    Attributes:
        desc, progress: the tqdm bar's label, and whether it is shown (stderr).
        frozen: a submodule (e.g. the encoder) kept in eval mode (BatchNorm statistics too) without gradients.
        on_batch: called with ``(batches done, batches in all epochs)`` after each batch (it may raise to stop).
        on_epoch: called with ``(epoch index, mean loss)`` after each epoch; returning True stops training.
    """

    desc: str = "train"
    progress: bool = True
    frozen: torch.nn.Module | None = None
    on_batch: Callable[[int, int], None] | None = None
    on_epoch: Callable[[int, float], bool] | None = None


@dataclass(frozen=True)
class FitLog:
    """What :func:`fit` did: mean training loss per epoch, seconds, and with early stopping the validation
    loss per epoch and the best epoch (1-based; its weights are the model's)."""

    losses: list[float]
    seconds: float
    val_losses: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def record(self, max_epochs: int) -> dict[str, Any]:
        """Epochs reached and, with early stopping, the best epoch and validation losses (for the metadata)."""
        out: dict[str, Any] = {"epochs_reached": len(self.losses), "max_epochs": max_epochs}
        if self.best_epoch is not None:
            out.update(
                best_epoch=self.best_epoch, val_loss=self.val_losses, stopped_early=len(self.losses) < max_epochs
            )
        return out


def fit(
    model: torch.nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    recipe: Recipe,
    *,
    zflip: bool,
    device: torch.device,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    hooks: FitHooks = FitHooks(),
) -> FitLog:
    """Train ``model`` in place with Adam on windows ``x_all`` ``(N, C, H, W)`` and labels ``y_all`` ``(N, 1, H, W)``.

    The global RNGs must be seeded (:func:`seed_everything`); the shuffles and augmentations draw from a
    generator seeded with ``recipe.seed``. With ``recipe.patience`` and validation windows ``val``, the loss on
    ``val`` is measured after every epoch, training stops by :class:`explorer.training.early_stopping.EarlyStopping`
    and the best epoch's weights are restored.

    Args:
        model: the network, trained in place.
        x_all, y_all: the training windows and labels.
        recipe: hyper-parameters, seed and early-stopping patience.
        zflip: also train on channel-reversed windows (the ``imagenet-zflip`` strategy's augmentation).
        device: where to train.
        val: validation windows and labels (early stopping with ``recipe.patience``).
        hooks: progress bar, a frozen submodule, and per-batch / per-epoch callbacks.

    Returns:
        The losses per epoch, the seconds spent and the early-stopping record.
    """
    gen = torch.Generator().manual_seed(recipe.seed)
    loss_fn, _ = build_loss(recipe.loss, recipe.loss_params)
    if hooks.frozen is not None:
        hooks.frozen.requires_grad_(False)
    model.to(device).train()
    if hooks.frozen is not None:
        hooks.frozen.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    # Adam's fused kernel (the CPU's and CUDA's): the default steps each of a U-Net's tensors in turn, which took
    # 6.8 of the 34 s that `explorer validate --quick` trains for on a CPU; fused, 1.6 s (docs/performance.md)
    optimiser = torch.optim.Adam(trainable, lr=recipe.lr, fused=torch.device(device).type in ("cpu", "cuda"))
    n_batches = -(-len(x_all) // recipe.batch_size)
    losses: list[float] = []
    done = 0
    val_losses: list[float] = []
    stopper = EarlyStopping(recipe.patience, recipe.warmup) if recipe.patience is not None and val is not None else None
    started = time.perf_counter()
    with tqdm(
        total=recipe.epochs * n_batches, desc=hooks.desc, unit="batch", disable=not hooks.progress, leave=False
    ) as bar:
        for epoch in range(recipe.epochs):
            order = torch.randperm(len(x_all), generator=gen)
            batches = list(order.split(recipe.batch_size))
            if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm needs two samples
                batches[-2:] = [torch.cat(batches[-2:])]
            total = 0.0
            for idx in batches:
                x, y = _augment(x_all[idx], y_all[idx], gen, flips=recipe.inplane_flips, zflip=zflip)
                x, y = x.to(device), y.to(device)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
                bar.update(1)
                done += 1
                if hooks.on_batch is not None:  # counted here: a disabled tqdm bar does not count
                    hooks.on_batch(done, recipe.epochs * n_batches)
            losses.append(total / len(x_all))
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
            if stopper is not None and val is not None:
                val_losses.append(validation_loss(model, *val, loss_fn, device))
                bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", val=f"{val_losses[-1]:.4f}")
                if stopper.update(val_losses[-1], model):
                    break
            if hooks.on_epoch is not None:
                if hooks.on_epoch(epoch, losses[-1]):
                    break
                model.train()
            if hooks.frozen is not None:
                hooks.frozen.eval()  # validation_loss and on_epoch leave the model in train mode
    if stopper is None:
        return FitLog(losses, time.perf_counter() - started)
    stopper.restore(model)
    return FitLog(losses, time.perf_counter() - started, val_losses, stopper.best_epoch)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    stack: np.ndarray,
    offsets: Sequence[int],
    slices: np.ndarray,
    stats: tuple[np.ndarray, np.ndarray] | None,
    device: torch.device,
) -> np.ndarray:
    """Predicted foreground ``(len(slices), H, W)`` bool (logit > 0) of ``model`` (set to eval) for ``slices``."""
    model.eval()
    out = [
        b.padding.crop(model(b.x.to(device))[:, 0]).cpu().numpy() > 0
        for b in iter_windows(stack, offsets, batch_size=8, slices=slices, channel_stats=stats)
    ]
    return np.concatenate(out)


def train(
    volume: Volume, mask: Mask, spec: TrainSpec, *, hooks: FitHooks | None = None, command: str | None = None
) -> TrainResult:
    """Initialise a model as ``spec`` says and train it on ``volume``/``mask`` slices along ``spec.axis``.

    Args:
        volume, mask: the training data (mask on the volume's grid).
        spec: the model, window, strategy, recipe and device.
        hooks: progress bar and callbacks (:class:`FitHooks`; the bar is labelled with the strategy).
        command: the command line that started this run (stored in the metadata).

    Returns:
        The trained model (eval mode, on the CPU), its metadata (held-out Dice in ``metrics``) and losses.

    Raises:
        InputError: an empty mask, too few slices, missing weights, or early stopping (``recipe.patience``; it
            needs subject-level training).
    """
    recipe, offsets, axis = spec.recipe, spec.offsets, spec.axis
    check_slices(volume.shape, axis_index(axis), volume.source)  # 32,767 one-voxel slices are no 2D+ volume
    if recipe.patience is not None:
        raise InputError(
            "--patience",
            "early stopping with one training volume",
            "--manifest: early stopping holds out whole training subjects for validation",
        )
    dev = select_device(spec.device)
    study = Study(volume, mask)
    stack, labels = study.slices(axis, spec.normalisation), study.mask_slices(axis)
    stats = channel_stats_for(spec.normalisation, len(offsets))
    split = split_slices(labels, offsets, recipe.val_fraction)

    model, init = spec.initialised()
    used = split.train[:: recipe.slice_stride]
    x_all = _windows(stack, offsets, used, stats)
    y_all = torch.from_numpy(pad_to_multiple(labels[used].astype(np.float32), 32)[0][:, None])
    log = spec.fit(model, (x_all, y_all), dev, hooks=hooks)
    pred = predict(model, stack, offsets, split.val, stats, dev)
    model = model.cpu().eval()
    data = {
        "volume": {"name": volume.source, "sha256": volume.sha256, "shape": list(volume.shape)},
        "mask": {"name": mask.source, "sha256": mask.sha256},
        "split": {"train_slices": len(used), "val_slices": [int(split.val[0]), int(split.val[-1])], "gap": split.gap},
    }
    metrics = {"val_dice": dice(pred, labels[split.val]), "train_loss": log.losses}
    meta = spec.meta(model, init, log, dev, command, data, metrics)
    return TrainResult(model=model, meta=meta, losses=log.losses)


def train_checkpoint(
    volume_path: str | Path | Volume,
    mask_path: str | Path,
    out: str | Path,
    spec: TrainSpec,
    *,
    hooks: FitHooks | None = None,
    command: str | None = None,
) -> TrainResult:
    """Load the volume (unless given loaded) and mask, :func:`train`, save the checkpoint to ``out`` (float16, atomic).

    Raises:
        InputError: as :func:`load_volume`, :func:`load_mask`, :func:`train` and :func:`save_checkpoint`.
    """
    if Path(out).suffix != ".safetensors":
        raise InputError(out, "output name does not end in .safetensors", "e.g. --out model.safetensors")
    study = Study.load(volume_path, mask_path)
    result = train(study.volume, study.mask, spec, hooks=hooks, command=command)
    save_checkpoint(result.model, result.meta, out)
    return result
