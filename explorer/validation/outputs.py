"""Write a :class:`explorer.validation.Validation` to a folder: ``validation.csv`` (one row per network ×
method), ``validation.json`` (the aggregated table and the run's record) and ``figures/validation.html``
(plus PNG where static export works).

As :func:`explorer.reporting.outputs.write_outputs`: everything goes into a temporary folder beside the destination,
which then replaces it in one rename; a destination holding files that are not an earlier validation output
is refused before any work (:func:`check_validation_out`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..outdir import staging
from ..reporting.export import table_csv, write_figures
from ..reporting.figures.validation import validation_figure
from ..reporting.outputs import _json_safe, check_out_dir, swap_into
from .run import Validation

__all__ = ["MARKER", "VALIDATION_NAMES", "check_validation_out", "write_validation"]


MARKER = "validation.json"
#: What a validation run writes into its folder (other files already there are kept when it is replaced).
VALIDATION_NAMES = frozenset({"validation.csv", MARKER, "figures"})


def check_validation_out(out_dir: str | Path) -> Path:
    """:func:`explorer.reporting.outputs.check_out_dir` for a validation folder (its marker is ``validation.json``).

    Raises:
        InputError: as :func:`explorer.reporting.outputs.check_out_dir`.
    """
    return check_out_dir(out_dir, marker=MARKER)


def write_validation(
    validation: Validation, out_dir: str | Path, *, figure_formats: Sequence[str] = ("png",)
) -> dict[str, Path]:
    """Write the validation's files into ``out_dir``, replacing an earlier validation output there.

    Args:
        validation: the result of :func:`explorer.validation.run_validation`.
        out_dir: destination folder.
        figure_formats: static formats besides HTML (written where static export works).

    Returns:
        ``{"csv": path, "json": path, "figures": dir}``.

    Raises:
        InputError: a destination refused by :func:`check_validation_out`.
    """
    out = check_validation_out(out_dir)
    with staging(out) as tmp:
        written = {"csv": tmp / "validation.csv", "json": tmp / MARKER, "figures": tmp / "figures"}
        written["csv"].write_bytes(table_csv(validation.rows))
        document = {"table": validation.table.to_dict(orient="records"), **validation.record}
        written["json"].write_text(json.dumps(_json_safe(document), indent=2, allow_nan=False))
        write_figures(
            {"validation": validation_figure(validation.table)}, written["figures"], formats=("html", *figure_formats)
        )
        swap_into(tmp, out, ours=VALIDATION_NAMES)
        return {key: out / path.relative_to(tmp) for key, path in written.items()}
