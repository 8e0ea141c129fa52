"""Make ``import torchvision`` (and so timm and smp) work with a CPU-only torch.

The torchvision 0.28.0 wheel that pairs with torch 2.13.0 is built for CUDA. On the CPU build of torch its
C++ ops do not load, and importing torchvision fails with "operator torchvision::nms does not exist" while
registering fake kernels for ``nms``. We only need torchvision's Python side (timm and smp import it), so
when its compiled ops cannot load we declare the two schemas torchvision expects; nothing ever calls them.
Where they do load (a CUDA torch, a matching CPU wheel) they are loaded first, as torchvision itself would,
and nothing is declared: declaring them there would make torchvision's own registration abort the process.

It runs before torchvision is first imported: ``import explorer`` installs an import hook that imports this
module when torchvision is about to be imported (by timm or segmentation_models_pytorch).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os

import torch

_LIBRARY: torch.library.Library | None = None  # kept alive: dropping the Library object unregisters it


def ensure_torchvision_ops() -> None:
    """Declare ``torchvision::nms`` and ``torchvision::qnms`` when torchvision's C++ ops are absent."""
    global _LIBRARY
    if _LIBRARY is not None or _has_nms() or _load_torchvision_ops():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib


def _load_torchvision_ops() -> bool:
    """Load torchvision's ``_C`` extension the way ``torchvision.extension`` does; False where it cannot load."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    finder = importlib.machinery.FileFinder(
        os.fspath(next(iter(spec.submodule_search_locations))),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    )
    extension = finder.find_spec("_C")
    if extension is None or extension.origin is None:
        return False
    try:
        torch.ops.load_library(extension.origin)
    except (OSError, RuntimeError):  # e.g. a CUDA build of torchvision beside a CPU-only torch
        return False
    return _has_nms()


def _has_nms() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup is the check
    except (AttributeError, RuntimeError):
        return False
    return True


ensure_torchvision_ops()
