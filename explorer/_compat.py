"""Make ``import torchvision`` (and so timm and smp) work with a CPU-only torch.

The torchvision 0.28.0 wheel that pairs with torch 2.13.0 is built for CUDA. On the CPU build of torch its
C++ ops do not load, and importing torchvision fails with "operator torchvision::nms does not exist" while
registering fake kernels for ``nms``. We only need torchvision's Python side (timm and smp import it), so
when the op is missing we declare the two schemas torchvision expects; nothing ever calls them. Where
torchvision's ops do load this module does nothing.

Import this module before torchvision, timm or segmentation_models_pytorch (``explorer/__init__`` does).
"""

from __future__ import annotations

import torch

_LIBRARY: torch.library.Library | None = None  # kept alive: dropping the Library object unregisters it


def ensure_torchvision_ops() -> None:
    """Declare ``torchvision::nms`` and ``torchvision::qnms`` when torchvision's C++ ops are absent."""
    global _LIBRARY
    if _LIBRARY is not None or _has_nms():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib


def _has_nms() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup is the check
    except (AttributeError, RuntimeError):
        return False
    return True


ensure_torchvision_ops()
