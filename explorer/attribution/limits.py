"""The memory estimate checked before an analysis runs (limit: ``EXPLORER_MAX_RUN_MEMORY_MB``).

An analysis runs its checkpoints one after another, one batch of slices at a time, so its peak memory is
what every run keeps (the volume, its normalised copy, each model's predictions and kept maps) plus the
largest single batch: the activations a forward keeps for the backward pass and their gradients. The
activations are counted, not guessed: forward hooks sum every layer's output on a small probe input
(:func:`activation_floats_per_pixel`) on the ``meta`` device, so the count allocates nothing whatever the
metadata declares; it scales with the padded slice area. Methods that evaluate several copies of a batch at once
(integrated gradients, occlusion) multiply it (:attr:`explorer.attribution.methods.Method.copies`).

The run-time estimate (limit ``EXPLORER_MAX_RUN_MINUTES``) uses the same count: forward+backward time is
about proportional to the activations computed, plus a fixed cost per batch, with constants measured on a
2-core CPU (``docs/performance.md``: 85 slices/s of 96 × 96 for a mobilenet_v2 U-Net) and doubled to stay an
upper bound. Before either estimate, the slices themselves are checked (:func:`explorer.config.check_slices`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..config import Limits, check_slices
from ..errors import InputError
from ..io.volume import Volume, axis_index
from ..models.build import meta_probe
from .fastpath import START_BATCH
from .methods import get_method
from .windows import padding_for

if TYPE_CHECKING:
    from ..spec import RunSpec

__all__ = [
    "BACKWARD_FACTOR",
    "SECONDS_PER_FLOAT",
    "SECONDS_PER_BATCH",
    "MAX_GPU_BATCH",
    "MemoryEstimate",
    "activation_floats_per_pixel",
    "slice_bytes",
    "device_batch_size",
    "estimate_run_memory",
    "estimate_run_seconds",
    "check_run_memory",
]


#: Kept activations plus their gradients in the backward pass.
BACKWARD_FACTOR = 2
#: CPU seconds per activation float per pixel of forward+backward, and per batch (measured, then doubled).
SECONDS_PER_FLOAT = 5e-9
SECONDS_PER_BATCH = 0.04
#: The largest batch a GPU run starts with, whatever its free memory.
MAX_GPU_BATCH = 256


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes an analysis is expected to need at its peak, by part."""

    inputs: int
    results: int
    batch: int
    weights: int

    @property
    def total(self) -> int:
        return self.inputs + self.results + self.batch + self.weights


def activation_floats_per_pixel(checkpoint) -> tuple[float, int]:
    """Activations one forward keeps per input pixel, and the weights' bytes, of a checkpoint's architecture.

    Args:
        checkpoint: an :class:`explorer.models.checkpoints.Checkpoint` (only its metadata is used).

    Returns:
        ``(floats per input pixel, bytes of float32 weights)``, counted on the ``meta`` device
        (:func:`explorer.models.build.meta_probe`): nothing the metadata sizes is allocated; cached per architecture.

    Raises:
        InputError: an architecture whose logits do not have its input's size, or that fails on a small input.
    """
    return meta_probe(*checkpoint.meta.architecture)


def slice_bytes(checkpoint, method: str, slice_shape: tuple[int, int]) -> int:
    """Bytes one slice of ``slice_shape`` adds to an attribution batch: activations kept for the backward and
    their gradients, on the slice padded for the network, times the copies the method evaluates at once."""
    pad = padding_for(*slice_shape)
    padded = (slice_shape[0] + pad.top + pad.bottom) * (slice_shape[1] + pad.left + pad.right)
    floats = activation_floats_per_pixel(checkpoint)[0]
    return int(get_method(method).copies_for(len(checkpoint.meta.offsets)) * floats * padded * 4 * BACKWARD_FACTOR)


def device_batch_size(checkpoint, method: str, slice_shape: tuple[int, int], device: torch.device) -> int | None:
    """Slices per attribution batch on ``device``: on CUDA as many as fill half its free memory (at most
    :data:`MAX_GPU_BATCH`; an out-of-memory error still halves the batch), elsewhere None (the device's default,
    :data:`explorer.attribution.fastpath.START_BATCH`: on a CPU larger batches do not run faster)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_GPU_BATCH, free // 2 // slice_bytes(checkpoint, method, slice_shape)))


def estimate_run_memory(
    volume: Volume, checkpoints: Sequence, spec: RunSpec, *, batch_size: int | None = None
) -> MemoryEstimate:
    """Estimate the peak memory of :func:`explorer.analysis.analyze` before it runs.

    Args:
        volume: the loaded volume.
        checkpoints: the loaded checkpoints.
        spec: the run (axis filled in): its method, whether maps are kept (float16, ``S × C × H × W`` per model;
            without, the maps of the model being analysed still exist while it runs, since background attention
            reads them) and whether the reversed pass runs (a second prediction per model).
        batch_size: slices per batch (default: the CPU's first batch size).

    Returns:
        A :class:`MemoryEstimate`.
    """
    axis, method, keep_maps, zflip = spec.axis, spec.method, spec.keep_maps, spec.zflip
    dims = list(volume.shape)
    slices = dims.pop(axis_index(axis))
    voxels = int(volume.data.size)
    batch = batch_size or START_BATCH["cpu"]
    results, transient, peak, weights = 0, 0, 0, 0
    for ckpt in checkpoints:
        channels = len(ckpt.meta.offsets)
        size = activation_floats_per_pixel(ckpt)[1]
        peak = max(peak, min(batch, slices) * slice_bytes(ckpt, method, tuple(dims)))
        maps = voxels * channels * 2  # float16
        results += voxels * (2 if zflip else 1) + (maps if keep_maps else 0)
        transient = max(transient, 0 if keep_maps else maps)
        weights = max(weights, 3 * size)  # the state dict, the built model and its prepared copy
    return MemoryEstimate(inputs=voxels * 4 * 2, results=results + transient, batch=peak, weights=weights)


def estimate_run_seconds(volume: Volume, checkpoints: Sequence, spec: RunSpec) -> float:
    """Upper estimate of an analysis' CPU time in seconds (method defaults, every slice of every model).

    Args:
        volume, checkpoints, spec: as :func:`estimate_run_memory`.
    """
    axis, method, zflip = spec.axis, spec.method, spec.zflip
    dims = list(volume.shape)
    slices = dims.pop(axis_index(axis))
    pad = padding_for(*dims)
    padded = (dims[0] + pad.top + pad.bottom) * (dims[1] + pad.left + pad.right)
    total = 0.0
    for ckpt in checkpoints:
        passes = get_method(method).passes_for(len(ckpt.meta.offsets)) * (2 if zflip else 1)
        floats, _ = activation_floats_per_pixel(ckpt)
        batches = -(-slices // START_BATCH["cpu"])
        total += passes * (batches * SECONDS_PER_BATCH + slices * padded * floats * SECONDS_PER_FLOAT)
    return total


def check_run_memory(
    volume: Volume, checkpoints: Sequence, spec: RunSpec, *, limits: Limits | None = None
) -> MemoryEstimate:
    """Refuse a run whose slices make no sense for 2D+, or whose estimated memory or run time exceeds its
    limit, saying what to change.

    Args:
        volume, checkpoints, spec: as :func:`estimate_run_memory`.
        limits: the limit (default :meth:`Limits.from_env`, i.e. ``EXPLORER_MAX_RUN_MEMORY_MB``).

    Returns:
        The estimate, when it is within the limit.

    Raises:
        InputError: slices outside the limits of :func:`explorer.config.check_slices`, or an estimate over
            ``limits.max_run_memory_bytes`` or ``limits.max_run_seconds`` (names the volume).
    """
    limits = limits or Limits.from_env()
    check_slices(volume.shape, axis_index(spec.axis), volume.source, limits)
    estimate = estimate_run_memory(volume, checkpoints, spec)
    if estimate.total > limits.max_run_memory_bytes:
        mb = 1024**2
        raise InputError(
            volume.source,
            f"estimated memory for this run is {estimate.total / mb:,.0f} MB (volume {estimate.inputs / mb:,.0f}, "
            f"results {estimate.results / mb:,.0f}, largest batch {estimate.batch / mb:,.0f}), over the limit of "
            f"{limits.max_run_memory_bytes / mb:,.0f} MB",
            "fewer checkpoints, no attribution maps, a cropped or downsampled volume, a lighter method, "
            "or raise EXPLORER_MAX_RUN_MEMORY_MB",
        )
    seconds = estimate_run_seconds(volume, checkpoints, spec)
    if seconds > limits.max_run_seconds:
        raise InputError(
            volume.source,
            f"estimated run time is {seconds / 60:,.0f} minutes on a CPU "
            f"({len(checkpoints)} checkpoint(s), method {spec.method!r}), over the limit of "
            f"{limits.max_run_seconds / 60:,.0f} minutes",
            "fewer slices or checkpoints, a lighter method, a GPU, or raise EXPLORER_MAX_RUN_MINUTES",
        )
    return estimate
