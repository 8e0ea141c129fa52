"""The known-answer benchmark (``explorer validate``, docs/validation.md): networks trained on planted
dependencies, where the slice each network must use is known, analysed with every attribution method.

- :mod:`.planted`: the planted volumes (label of slice ``z`` from slice ``z + d`` only);
- :mod:`.spec`: :class:`ValidationSpec`, every parameter of a run;
- :mod:`.run`: training (cached), analysis and scoring; :mod:`.score`: the scores;
- :mod:`.functional`: Dice with one input slice ablated and on reversed windows;
- :mod:`.outputs`: ``validation.csv``, ``validation.json`` and the figure.
"""

from .run import Validation, run_validation
from .spec import DEFAULT_METHODS, REFERENCE_METHOD, ValidationSpec

__all__ = ["DEFAULT_METHODS", "REFERENCE_METHOD", "Validation", "ValidationSpec", "run_validation"]
