"""Call the engine with keyword arguments, as the tests were written: :func:`attribute` splits them into the
:class:`~explorer.attribution.windows.SliceStack`, the :class:`~explorer.spec.RunSpec` and the
:class:`~explorer.attribution.engine.Pass` that :func:`explorer.attribution.engine.attribute_stack` takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from explorer.attribution.engine import Pass, StackAttribution, attribute_stack
from explorer.attribution.windows import SliceStack
from explorer.spec import RunSpec


def attribute(
    model: nn.Module,
    stack: np.ndarray,
    offsets: Sequence[int],
    *,
    method: str = "saliency",
    target: str = "predicted",
    params: dict[str, Any] | None = None,
    precision: str = "float32",
    mask: np.ndarray | None = None,
    channel_stats: Any = None,
    progress: Any = None,
    **run: Any,
) -> StackAttribution:
    """:func:`attribute_stack` with saliency by default (the engine's default before specs travelled whole)."""
    spec = RunSpec(method=method, target=target, params=params or {}, precision=precision)
    return attribute_stack(model, SliceStack(stack, offsets, mask, channel_stats), spec, Pass(**run), progress)
