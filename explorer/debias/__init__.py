"""Debias your own network: first-conv surgery, fine-tuning and retraining, parent and children side by side.

- :mod:`.surgery`: the first-conv kernels tied (``symmetric`` or ``uniform``), and the gradient tie that keeps
  them tied while fine-tuning;
- :mod:`.spec`: :class:`DebiasSpec`, every parameter of a run;
- :mod:`.data`: :class:`DebiasData`, one volume (held-out block) or a manifest (held-out subjects);
- :mod:`.run`: :func:`debias`, the children (cached) and their evaluation beside the parent;
- :mod:`.outputs`: the children's ``.safetensors``, ``debias.json`` and the figure, written atomically.
"""

from .data import DebiasData
from .run import Child, DebiasResult, check_inputs, debias
from .spec import VARIANTS, DebiasSpec
from .surgery import MODES, surgery, symmetrise

__all__ = [
    "MODES",
    "VARIANTS",
    "Child",
    "DebiasData",
    "DebiasResult",
    "DebiasSpec",
    "check_inputs",
    "debias",
    "surgery",
    "symmetrise",
]
