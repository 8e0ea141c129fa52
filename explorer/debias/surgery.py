"""First-conv surgery: make a checkpoint exactly invariant to swapping mirrored neighbours.

Shapes: the first convolution's weight is ``(out, C, kh, kw)`` with channel ``i`` holding slice
``z + offsets[i]``. The window reversal ``R`` swaps the channels of offsets ``-k`` and ``+k``; nothing after the
first convolution sees the channels, so a network whose kernels of ``-k`` and ``+k`` are equal satisfies
``f∘R = f`` exactly, and its ``channel_asymmetry`` is 0 by the split's property (docs/definitions.md).

Modes:
- ``symmetric``: the kernels of each mirrored pair ``(-k, +k)`` replaced by their mean; the centre keeps its own;
- ``uniform``: every channel's kernel replaced by the mean over channels (the paper's fix, applied after training).
Both keep the response to a window of identical slices, so the rest of the network sees the same input scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .. import choices
from ..errors import InputError, unknown_name
from ..models.build import first_conv_key
from ..models.checkpoints import Checkpoint

__all__ = ["MODES", "check_mode", "symmetrise", "conv_key", "surgery", "tie_gradients"]


#: Surgery modes, each with its one-line definition (CLI help, app, report).
MODES: dict[str, str] = choices.DEBIAS_MODES


def check_mode(mode: str, offsets: Sequence[int], *, source: str = "checkpoint") -> None:
    """Refuse an unknown mode, or the symmetric mode for offsets without a mirrored pair.

    Raises:
        InputError: an unknown mode (listing the modes), or ``symmetric`` with offsets like ``(0,)``.
    """
    if mode not in MODES:
        raise unknown_name("surgery mode", mode, MODES)
    if mode == "symmetric" and not any(o > 0 and -o in offsets for o in offsets):
        raise InputError(
            source,
            f"offsets {tuple(offsets)} have no mirrored pair (-k, +k) for the symmetric mode",
            "a window with neighbours on both sides (e.g. -1,0,1), or --mode uniform",
        )


def symmetrise(weight: torch.Tensor, offsets: Sequence[int], mode: str) -> torch.Tensor:
    """``weight`` ``(out, C, ...)`` (a kernel or its gradient) with the channels tied as ``mode`` says.

    Args:
        weight: the first convolution's weight (or gradient), channel ``i`` for ``offsets[i]``.
        offsets: the window offsets.
        mode: a key of :data:`MODES`.

    Returns:
        A new tensor; the tied channels hold bit-identical values.

    Raises:
        InputError: as :func:`check_mode`.
    """
    check_mode(mode, offsets)
    if mode == "uniform":
        return weight.mean(dim=1, keepdim=True).expand_as(weight).clone()
    out = weight.clone()
    position = {int(o): i for i, o in enumerate(offsets)}
    for k in (o for o in position if o > 0 and -o in position):
        lo, hi = position[-k], position[k]
        mean = (weight[:, lo] + weight[:, hi]) / 2
        out[:, lo], out[:, hi] = mean, mean
    return out


def conv_key(ckpt: Checkpoint) -> str:
    """The state-dict key of ``ckpt``'s first convolution.

    Raises:
        InputError: the architecture has no convolution the registry can find (names the checkpoint).
    """
    m = ckpt.meta
    try:
        key = first_conv_key(*m.architecture)
    except InputError as exc:
        raise InputError(
            ckpt.name, f"no first convolution found ({exc.problem})", "an smp encoder whose first layer is a Conv2d"
        ) from exc
    if key not in ckpt.state_dict or ckpt.state_dict[key].ndim != 4 or ckpt.state_dict[key].shape[1] != len(m.offsets):
        raise InputError(
            ckpt.name,
            f"the first convolution {key!r} is missing or does not take {len(m.offsets)} channels",
            "a first Conv2d with one input channel per offset",
        )
    return key


def surgery(ckpt: Checkpoint, mode: str, *, name: str | None = None) -> Checkpoint:
    """``ckpt`` with its first-conv kernels tied as ``mode`` says; every other tensor is shared unchanged.

    Args:
        ckpt: the parent checkpoint.
        mode: a key of :data:`MODES`.
        name: the child's display name (default ``<parent>-surgery-<mode>``).

    Returns:
        A new :class:`Checkpoint` (its ``sha256`` is a placeholder until it is saved and reloaded).

    Raises:
        InputError: as :func:`check_mode` and :func:`conv_key`.
    """
    check_mode(mode, ckpt.meta.offsets, source=ckpt.name)
    key = conv_key(ckpt)
    weight = symmetrise(ckpt.state_dict[key], ckpt.meta.offsets, mode)
    return dataclasses.replace(
        ckpt, name=name or f"{ckpt.name}-surgery-{mode}", sha256="0" * 64, state_dict={**ckpt.state_dict, key: weight}
    )


def tie_gradients(conv: torch.nn.Conv2d, offsets: Sequence[int], mode: str) -> torch.utils.hooks.RemovableHandle:
    """Keep a tied first convolution tied while training: its gradient is symmetrised like its weight.

    Adam (and SGD) update each element from its own gradient and state, so tied weights with tied gradients
    stay bit-identical: the fine-tuned network keeps ``f∘R = f`` exactly. Remove the returned handle after
    training.
    """
    check_mode(mode, offsets)
    return conv.weight.register_hook(lambda grad: symmetrise(grad, offsets, mode))
