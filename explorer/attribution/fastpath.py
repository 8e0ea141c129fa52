"""Inference-speed preparation of a model for attribution, and batch sizes that adapt to memory.

:func:`prepare_model` works on a deep copy (a model shared between sessions is never mutated): eval mode,
float32, BatchNorm folded into the preceding convolution, channels-last memory format, parameters frozen
(gradients are taken w.r.t. the input only). Folding uses ``torch.fx`` (``fuse``), which handles smp's
``Conv2dReLU``, torchvision's and timm's blocks alike; a model fx cannot trace falls back to folding
``Conv2d → BatchNorm2d`` pairs that sit next to each other in an ``nn.Sequential``. Tracing is safe while
other threads run models (several app sessions): see :class:`_ThisThreadTracer`.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "PREPARED_CACHE_SIZE",
    "START_BATCH",
    "prepare_model",
    "prepared_checkpoint",
    "fold_batchnorm",
    "run_adaptive",
]


T = TypeVar("T")

_TRACE_LOCK = threading.Lock()
_PREPARED_LOCK = threading.Lock()
_PREPARED: OrderedDict[tuple[str, str], nn.Module] = OrderedDict()
#: Prepared models kept per process (a mobilenet_v2 U-Net takes about 26 MB in float32).
PREPARED_CACHE_SIZE = 8

#: First batch size tried per device type; on CUDA it halves on out-of-memory, then falls back to CPU.
START_BATCH: dict[str, int] = {"cpu": 8, "mps": 16, "cuda": 64}


def prepare_model(
    model: nn.Module, device: torch.device, *, fold_bn: bool = True, channels_last: bool = True
) -> nn.Module:
    """A copy of ``model`` ready for fast attribution on ``device``.

    Args:
        model: any eval-capable ``nn.Module`` taking ``(B, C, H, W)``; it is not modified.
        device: where the copy lives.
        fold_bn: fold each BatchNorm into the convolution before it (identical outputs in eval mode).
        channels_last: store weights (and expect inputs) in channels-last order, faster for convs on CPU/GPU.

    Returns:
        The prepared copy, in eval mode with frozen float32 parameters.
    """
    prepared = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    _keep_first_conv_float32(prepared)
    prepared = prepared.float().to(device)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    for p in prepared.parameters():
        p.requires_grad_(False)
    return prepared


def prepared_checkpoint(checkpoint: Any, device: torch.device) -> nn.Module:
    """:func:`prepare_model` of a checkpoint's model, kept per process (keyed by content hash and device).

    Building the model and folding its BatchNorm layers costs about 0.3 s per checkpoint on a CPU; every
    analysis of the same checkpoint after the first reuses the prepared copy. The copy is shared (between app
    sessions too) and must be treated as read-only: callers never modify it (the engine copies it before a
    device fallback), and methods that add hooks run on private models.
    """
    key = (checkpoint.sha256, str(device))
    with _PREPARED_LOCK:
        if key in _PREPARED:
            _PREPARED.move_to_end(key)
            return _PREPARED[key]
    prepared = prepare_model(checkpoint.build_model("cpu"), device)
    with _PREPARED_LOCK:
        _PREPARED[key] = prepared
        while len(_PREPARED) > PREPARED_CACHE_SIZE:
            _PREPARED.popitem(last=False)
    return prepared


class _Float32(nn.Module):
    """Runs the wrapped module in float32 whatever the autocast around it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.module(x.float())


def _keep_first_conv_float32(model: nn.Module) -> None:
    """Wrap the first convolution in :class:`_Float32`: under reduced precision it still weighs the input
    channels — the slices whose attribution is compared — with float32 kernels, and the input gradient
    leaves it in float32 (reduced precision there would blur exactly the channel differences measured)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, _Float32(child))
                return


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold eval-mode BatchNorm layers into the convolutions that feed them.

    Args:
        model: any module; it is not modified (a train-mode model is copied into eval mode first).

    Returns:
        A new eval-mode module with the same eval outputs (to float rounding) and fewer layers.
    """
    from torch.fx.experimental.optimization import fuse

    source = copy.deepcopy(model).eval()  # a private copy: the traced module shares its submodules
    try:
        return fuse(_trace(source), inplace=True, no_trace=True)
    except Exception:  # noqa: BLE001 - fx raises many types on untraceable Python control flow
        _fold_sequential_pairs(source)
        return source


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace`` that other threads' forward passes survive (one trace at a time)."""
    with _TRACE_LOCK:
        tracer = _ThisThreadTracer()
        graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


class _ThisThreadTracer(torch.fx.Tracer):
    """While fx traces it patches ``nn.Module.__call__`` and ``__getattr__`` for the whole process, so a
    forward pass running in another thread (another session's analysis) would be recorded into this trace
    and fail. This tracer lets every call from another thread through untouched."""

    def __init__(self) -> None:
        super().__init__()
        self._owner = threading.get_ident()

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict):  # type: ignore[override]
        if threading.get_ident() != self._owner:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: object, parameter_proxy_cache: dict):  # type: ignore[override]
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _fold_sequential_pairs(module: nn.Module) -> None:
    for child in module.children():
        _fold_sequential_pairs(child)
    if not isinstance(module, nn.Sequential):
        return
    names = list(module._modules)
    for a, b in zip(names, names[1:], strict=False):
        conv, bn = module._modules[a], module._modules[b]
        if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
            module._modules[a] = fuse_conv_bn_eval(conv, bn)
            module._modules[b] = nn.Identity()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_adaptive(
    items: Sequence[int],
    work: Callable[[Sequence[int], torch.device], T],
    device: torch.device,
    *,
    batch_size: int | None = None,
    on_fallback: Callable[[torch.device], None] | None = None,
) -> list[T]:
    """Call ``work(chunk, device)`` on consecutive chunks of ``items``, adapting the chunk size to memory.

    On an out-of-memory error the chunk size halves and the chunk is retried; at size 1 on a GPU the run
    moves to the CPU (``on_fallback(cpu)`` lets the caller move its model) and continues there.

    Args:
        items: what to process (slice indices).
        work: processes one chunk on a device, returns its result.
        device: the starting device.
        batch_size: the starting chunk size (default :data:`START_BATCH` for the device type).
        on_fallback: called with the new device before continuing on the CPU.

    Returns:
        The results of every chunk, in order.
    """
    size = batch_size or START_BATCH.get(device.type, 8)
    results: list[T] = []
    start = 0
    while start < len(items):
        chunk = items[start : start + size]
        try:
            results.append(work(chunk, device))
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc) or device.type == "cpu":
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if size > 1:
                size //= 2
            else:
                device = torch.device("cpu")
                size = START_BATCH["cpu"]
                if on_fallback is not None:
                    on_fallback(device)
            continue
        start += len(chunk)
    return results
