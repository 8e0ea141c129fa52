"""2D+ windows: slice ``z`` and its neighbours packed into input channels.

Shapes: a *stack* is ``(S, H, W)`` (slices first, see :meth:`Volume.stack`); a window batch is
``(B, C, H', W')`` with ``C = len(offsets)`` and ``H', W'`` padded up to a multiple of ``multiple`` (32 for
the smp encoders). Channel ``i`` of slice ``z``'s window holds slice ``z + offsets[i]``; slices outside the
stack are edge-replicated (the first or last slice repeats).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

__all__ = [
    "Offsets",
    "MAX_OFFSET",
    "validate_offsets",
    "window_indices",
    "Padding",
    "padding_for",
    "pad_to_multiple",
    "mask_batch",
    "WindowBatch",
    "iter_windows",
    "SliceStack",
]


Offsets = tuple[int, ...]


#: Widest window: offsets ``-MAX_OFFSET .. +MAX_OFFSET`` (33 input channels).
MAX_OFFSET = 16


def _offset(value: object) -> int:
    """One offset as an int: ints, integral floats and integer strings (``"-2"``); nothing is truncated."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    if isinstance(value, str):
        return int(value.strip())  # int("1.5") raises: a fractional string is refused, not truncated
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise TypeError(value)


def validate_offsets(offsets: Sequence[int], *, source: str | None = None) -> Offsets:
    """Check offsets are integers, distinct, sorted, symmetric about 0, contain 0 and lie within
    ``±MAX_OFFSET``: ``(-k, ..., 0, ..., k)``; gaps are allowed (``-2, 0, 2``).

    Raises:
        InputError: anything else (the message shows the expected form); fractional offsets are refused.
    """
    try:
        values = tuple(_offset(o) for o in offsets)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(source, f"offsets {repr(offsets)[:80]} are not integers", "e.g. -1,0,1") from exc
    ok = (
        len(values) % 2 == 1
        and 0 in values
        and list(values) == sorted(set(values))
        and values == tuple(-v for v in reversed(values))
    )
    if not ok:
        raise InputError(
            source,
            f"offsets {str(values)[:80]} are not an odd, sorted set symmetric about 0",
            "e.g. (-1, 0, 1), (-2, -1, 0, 1, 2) or (-2, 0, 2)",
        )
    if max(values) > MAX_OFFSET:
        raise InputError(source, f"offsets reach {max(values)}", f"offsets within ±{MAX_OFFSET}")
    return values


def window_indices(n_slices: int, offsets: Sequence[int], slices: Sequence[int] | None = None) -> np.ndarray:
    """Slice index read by each channel: ``(N, C)`` ints, ``clip(z + offsets[i], 0, n_slices - 1)``."""
    z = np.arange(n_slices) if slices is None else np.asarray(slices, dtype=np.int64)
    return np.clip(z[:, None] + np.asarray(offsets, dtype=np.int64)[None, :], 0, n_slices - 1)


@dataclass(frozen=True)
class Padding:
    """Rows/columns added on each side by :func:`pad_to_multiple`; :meth:`crop` undoes it exactly."""

    top: int
    bottom: int
    left: int
    right: int

    def crop(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Remove the padding from the last two axes of ``x``."""
        h, w = x.shape[-2], x.shape[-1]
        return x[..., self.top : h - self.bottom, self.left : w - self.right]


def padding_for(height: int, width: int, multiple: int = 32) -> Padding:
    """Symmetric padding that brings ``height`` and ``width`` up to a multiple of ``multiple``."""
    ph, pw = (-height) % multiple, (-width) % multiple
    return Padding(ph // 2, ph - ph // 2, pw // 2, pw - pw // 2)


def pad_to_multiple(x: np.ndarray, multiple: int = 32, value: float = 0.0) -> tuple[np.ndarray, Padding]:
    """Pad the last two axes of ``x`` with ``value`` up to a multiple of ``multiple``."""
    pad = padding_for(x.shape[-2], x.shape[-1], multiple)
    widths = [(0, 0)] * (x.ndim - 2) + [(pad.top, pad.bottom), (pad.left, pad.right)]
    return np.pad(x, widths, mode="constant", constant_values=value), pad


def mask_batch(
    mask: np.ndarray | None, slices: Sequence[int], device: torch.device | str = "cpu", multiple: int = 32
) -> torch.Tensor | None:
    """The mask slices ``(B, H', W')`` bool, padded like :func:`iter_windows` pads their windows (None stays)."""
    if mask is None:
        return None
    padded, _ = pad_to_multiple(mask[np.asarray(slices)].astype(np.float32), multiple, 0.0)
    return torch.from_numpy(padded > 0).to(device)


@dataclass(frozen=True)
class WindowBatch:
    """One batch: ``slices`` (B,) are the stack indices, ``x`` the padded windows ``(B, C, H', W')``."""

    slices: np.ndarray
    x: torch.Tensor
    padding: Padding


def iter_windows(
    stack: np.ndarray | torch.Tensor,
    offsets: Sequence[int],
    *,
    batch_size: int = 8,
    slices: Sequence[int] | None = None,
    multiple: int = 32,
    channel_stats: tuple[np.ndarray, np.ndarray] | None = None,
    fill: float | None = None,
) -> Iterator[WindowBatch]:
    """Yield padded window batches; only one batch of windows exists in memory at a time.

    Args:
        stack: normalised slices ``(S, H, W)``, float32: an array, or a tensor (the windows are then built
            where it lives, e.g. on the GPU, without a host round trip per batch).
        offsets: window offsets (validated).
        batch_size: windows per batch.
        slices: which slices to yield windows for (default all, in order).
        multiple: pad height and width up to a multiple of this (the padding holds the stack's minimum).
        channel_stats: optional per-channel (mean, std), applied after padding (to the padding too).
        fill: the padding value (default the stack's minimum; pass it when calling once per batch of one stack).
    """
    offsets = validate_offsets(offsets)
    if batch_size < 1:
        raise InputError("batch_size", f"batch size {batch_size}", "a positive integer")
    source = stack if isinstance(stack, torch.Tensor) else torch.from_numpy(np.asarray(stack, dtype=np.float32))
    n = source.shape[0]
    order = np.arange(n) if slices is None else np.asarray(slices, dtype=np.int64)
    if fill is None:
        fill = float(source.min())  # background: after a volume-level transform the minimum is "outside"
    pad = padding_for(source.shape[1], source.shape[2], multiple)
    stats = (
        None
        if channel_stats is None
        else [
            torch.as_tensor(np.asarray(a, dtype=np.float64), device=source.device)[None, :, None, None]
            for a in channel_stats
        ]
    )
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        index = torch.from_numpy(window_indices(n, offsets, chunk)).to(source.device)
        x = torch.nn.functional.pad(source[index], (pad.left, pad.right, pad.top, pad.bottom), value=fill)
        if stats is not None:  # in float64, then rounded once, as the arrays were before
            x = ((x.double() - stats[0]) / stats[1]).float()
        yield WindowBatch(slices=chunk, x=x.contiguous(), padding=pad)


@dataclass(frozen=True, eq=False)
class SliceStack:
    """A normalised slice stack with what windowing it needs: the model's offsets and per-channel
    normalisation, and the ground truth on the same slices when there is one.

    Attributes:
        stack: normalised slices ``(S, H, W)`` float32.
        offsets: the model's window offsets (validated).
        mask: ground truth ``(S, H, W)`` bool, or None.
        channel_stats: per-channel (mean, std) of a per-channel normalisation preset, or None.

    Raises:
        InputError: a stack that is not ``(S, H, W)``, bad offsets, or a mask of another shape.
    """

    stack: np.ndarray
    offsets: Offsets
    mask: np.ndarray | None = None
    channel_stats: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", validate_offsets(self.offsets))
        if self.stack.ndim != 3:
            raise InputError("stack", f"slice stack of shape {self.stack.shape}", "(slices, height, width)")
        if self.mask is not None and self.mask.shape != self.stack.shape:
            raise InputError(
                "mask", f"mask stack of shape {self.mask.shape}, volume stack {self.stack.shape}", "equal shapes"
            )

    def windows(
        self, *, batch_size: int = 8, slices: Sequence[int] | None = None, multiple: int = 32, fill: float | None = None
    ) -> Iterator[WindowBatch]:
        """:func:`iter_windows` over this stack with its offsets and channel statistics."""
        return iter_windows(
            self.stack,
            self.offsets,
            batch_size=batch_size,
            slices=slices,
            multiple=multiple,
            channel_stats=self.channel_stats,
            fill=fill,
        )
