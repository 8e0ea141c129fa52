"""Diagnostics beyond channel shares, on the same volume, checkpoints and (where possible) cached maps.

Registry :data:`DIAGNOSTICS` (name → what it measures, its reference, whether it is opt-in). The two cheap
ones run in every analysis; the two that re-run the model several times are opt-in
(:class:`DiagnosticOptions`, CLI ``--cam``/``--cam-layer`` and ``--sanity``, an app button).
"""

from __future__ import annotations

from .options import DIAGNOSTICS, Diagnostic, DiagnosticOptions
from .run import DiagnosticsResult, check_options, diagnostics_tables, run_default, run_opt_in

__all__ = [
    "DIAGNOSTICS",
    "Diagnostic",
    "DiagnosticOptions",
    "DiagnosticsResult",
    "check_options",
    "diagnostics_tables",
    "run_default",
    "run_opt_in",
]
