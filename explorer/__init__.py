"""explorer: saliency asymmetry of 2D+ segmentation networks across their neighbouring input slices.

Importing the package installs an import hook that applies the torchvision compatibility shim
(:mod:`explorer._compat`) just before torchvision is first imported (by timm or smp), so that they import on a
CPU-only torch. The hook, not an eager import, keeps ``import explorer`` free of torch: a CLI re-run answered
from its run record (:mod:`explorer.reporting.replay`) never loads it.
"""

from __future__ import annotations

import importlib.abc
import sys

__version__ = "0.1.0"


class _TorchvisionShim(importlib.abc.MetaPathFinder):
    """Runs :func:`explorer._compat.ensure_torchvision_ops` once, when ``torchvision`` is about to be imported."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "torchvision":
            sys.meta_path.remove(self)  # first: _compat looks torchvision up itself
            from . import _compat  # noqa: F401  (declares the ops where torchvision's own cannot load)
        return None  # the regular finders import it


if "torchvision" not in sys.modules and not any(isinstance(f, _TorchvisionShim) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionShim())
