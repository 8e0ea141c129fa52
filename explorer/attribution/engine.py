"""The batched attribution engine: every slice of a stack, one batch at a time, any method and target.

Shapes: ``stack`` is the normalised ``(S, H, W)`` float32 slice stack; results are per slice in stack order:
masses ``(S, C)`` (channel ``i`` = offset ``offsets[i]``), predictions ``(S, H, W)`` bool and, when kept,
maps ``(S, C, H, W)`` float16 — all unpadded. With ``Pass(reverse=True)`` the windows are fed with their channel
order reversed (the reversed pass); the results are mapped back so that channel ``i`` still means offset
``offsets[i]``.

Each batch goes through :func:`explorer.attribution.methods.explain_batch`, the one attribution dispatch: gradient
methods reuse one forward for the prediction and the target; the other methods run a no-grad forward first
and then explain only the slices whose target is not empty.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..device import autocast, resolve_precision
from .fastpath import run_adaptive
from .methods import explain_batch, require_truth
from .windows import SliceStack, WindowBatch, iter_windows, mask_batch

if TYPE_CHECKING:
    from ..spec import RunSpec

__all__ = ["MAPS_IN_MEMORY_BYTES", "Progress", "StackAttribution", "Pass", "attribute_stack"]

#: Maps larger than this are written to a disk-backed ``np.memmap`` instead of memory.
MAPS_IN_MEMORY_BYTES = 256 * 1024**2

Progress = Callable[[float, str], None]


@dataclass(frozen=True, eq=False)
class StackAttribution:
    """Per-slice results of :func:`attribute_stack`.

    Attributes:
        masses: ``(S, C)`` float64 channel mass ``Σ_pixels |A|``; rows of skipped slices are NaN.
        prediction: ``(S, H, W)`` bool predicted foreground (logit > 0).
        logits: ``(S, H, W)`` float32 foreground logits of that same forward pass (the diagnostics' logit
            histograms reuse them instead of running the model again).
        maps: ``(S, C, H, W)`` float16 attribution when requested (``np.memmap`` for large stacks), else None.
        info: per-slice method diagnostics, name -> ``(S,)`` float64 (NaN for skipped slices), e.g. integrated
            gradients' ``convergence_delta`` and SmoothGrad's ``noise_sigma``.
    """

    masses: np.ndarray
    prediction: np.ndarray
    maps: np.ndarray | None
    logits: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    """How one pass of :func:`attribute_stack` runs, beyond what its :class:`~explorer.spec.RunSpec` says.

    Attributes:
        device: where to compute (default: the model's device).
        reverse: feed each window with its channels reversed (the reversed pass of the channel/anatomy split).
        slices: attribute only these slices (default all); the others keep NaN masses and no prediction.
        keep_maps: also return the float16 attribution maps.
        batch_size: slices per batch (default per device, adapting to memory on GPUs).
        maps_dir: where large maps are memory-mapped (default: a temporary directory).
        multiple: pad slices to a multiple of this (32 for the smp encoders; the results do not depend on it
            beyond the network's own border effects, since no target includes padded pixels).
    """

    device: torch.device | None = None
    reverse: bool = False
    slices: Sequence[int] | None = None
    keep_maps: bool = False
    batch_size: int | None = None
    maps_dir: str | Path | None = None
    multiple: int = 32


def attribute_stack(
    model: nn.Module, data: SliceStack, spec: RunSpec, run: Pass = Pass(), progress: Progress | None = None
) -> StackAttribution:
    """Attribute the target of every slice of ``data`` to the window's input channels.

    Args:
        model: a model prepared by :func:`explorer.attribution.fastpath.prepare_model` (eval mode, on ``run.device``).
        data: the normalised slices, the model's offsets and channel statistics, and the mask if any.
        spec: the method, its parameters, the target and the precision (``auto`` resolved for the device).
        run: device, reversal, slices, kept maps and batching of this pass.
        progress: ``progress(fraction, message)`` after each batch.

    Returns:
        A :class:`StackAttribution`.

    Raises:
        InputError: a target ``mask`` without a mask, or a model with more than one output logit.
    """
    require_truth(spec.target, data.mask is not None)
    state = {"model": model}
    device = run.device or next(model.parameters()).device
    precision = resolve_precision(spec.precision, device)
    offsets = data.offsets
    n, h, w = data.stack.shape
    masses = np.full((n, len(offsets)), np.nan)
    prediction = np.zeros((n, h, w), dtype=bool)
    logits = np.zeros((n, h, w), dtype=np.float32)
    maps = _allocate_maps((n, len(offsets), h, w), run.maps_dir) if run.keep_maps else None
    info: dict[str, np.ndarray] = {}
    done = [0]
    order = list(range(n)) if run.slices is None else [int(z) for z in run.slices]
    stack = data.stack

    # On a GPU the stack is uploaded once and every batch's windows are built there (no host copy per batch).
    on_device = torch.from_numpy(np.asarray(stack, dtype=np.float32)).to(device) if device.type == "cuda" else None
    fill = float(stack.min())  # the padding value, once per pass rather than per batch

    def work(chunk: Sequence[int], dev: torch.device) -> None:
        source = on_device if on_device is not None and dev == device else stack  # the CPU after a fallback
        x, batch = _windows(source, data, chunk, dev, run, fill)
        truth = mask_batch(data.mask, chunk, dev, run.multiple)
        with autocast(dev, precision):
            explained = explain_batch(
                state["model"],
                x,
                spec,
                slices=tuple(int(z) for z in chunk),
                padding=batch.padding,
                truth=truth,
                reversed_windows=run.reverse,
            )
        attr, out, keep = explained.attr, explained.logits, explained.keep
        pred = out > 0
        attr = batch.padding.crop(attr.flip(1) if run.reverse else attr).float()
        idx = np.asarray(chunk)
        chunk_masses = attr.abs().sum(dim=(2, 3)).double().cpu().numpy()
        chunk_masses[~keep.cpu().numpy()] = np.nan
        masses[idx] = chunk_masses
        for name, values in explained.info.items():
            info.setdefault(name, np.full(n, np.nan))[idx] = values.double().cpu().numpy()
        prediction[idx] = batch.padding.crop(pred).cpu().numpy()
        logits[idx] = batch.padding.crop(out).float().cpu().numpy()
        if maps is not None:
            maps[idx] = attr.to(torch.float16).cpu().numpy()
        done[0] += len(chunk)
        if progress is not None:
            progress(done[0] / len(order), f"{spec.method}: slice {done[0]}/{len(order)}")

    def fallback(cpu: torch.device) -> None:
        state["model"] = copy.deepcopy(state["model"]).to(cpu)  # a copy: the model may be shared (cached)

    run_adaptive(order, work, device, batch_size=run.batch_size, on_fallback=fallback)
    return StackAttribution(masses=masses, prediction=prediction, maps=maps, logits=logits, info=info)


def _windows(
    source: np.ndarray | torch.Tensor, data: SliceStack, chunk: Sequence[int], dev: torch.device, run: Pass, fill: float
) -> tuple[torch.Tensor, WindowBatch]:
    """One batch of windows on ``dev`` in channels-last order, channels reversed for the reversed pass."""
    (batch,) = iter_windows(
        source,
        data.offsets,
        batch_size=len(chunk),
        slices=chunk,
        channel_stats=data.channel_stats,
        multiple=run.multiple,
        fill=fill,
    )
    x = batch.x.to(dev).contiguous(memory_format=torch.channels_last)  # already there when the stack is
    return (x.flip(1) if run.reverse else x), batch


def _allocate_maps(shape: tuple[int, ...], maps_dir: str | Path | None) -> np.ndarray:
    nbytes = int(np.prod(shape)) * 2
    if nbytes <= MAPS_IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=np.float16)
    directory = Path(maps_dir) if maps_dir is not None else Path(tempfile.mkdtemp(prefix="explorer-maps-"))
    directory.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=directory, suffix=".npy", delete=False)
    handle.close()
    return np.lib.format.open_memmap(handle.name, mode="w+", dtype=np.float16, shape=shape)
