"""explorer: saliency asymmetry of 2D+ segmentation networks across their neighbouring input slices.

The compatibility shim is imported first so that torchvision, timm and smp import on a CPU-only torch.
"""

from . import _compat  # noqa: F401  (must precede any torchvision / timm / smp import)

__version__ = "0.1.0"
