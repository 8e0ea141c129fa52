"""Write a :class:`DebiasResult`: each child's ``.safetensors``, ``debias.json`` and ``figures/debias.*``.

As every output folder (:mod:`explorer.outdir`): checked before any work (:func:`check_debias_out`), written
into a temporary folder beside the destination and swapped into place only when complete, so a failed run
leaves nothing behind and a user's folder is never deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io.files import write_atomic
from ..outdir import check_out_dir, staging, swap_into
from ..reporting.export import write_figures
from ..reporting.figures.debias import debias_figure
from ..reporting.outputs import _json_safe
from .run import DebiasResult

__all__ = ["MARKER", "check_debias_out", "write_debias"]


MARKER = "debias.json"


def check_debias_out(out_dir: str | Path) -> Path:
    """The destination, checked before any work (new, empty, or an earlier ``explorer debias`` output).

    Raises:
        InputError: as :func:`explorer.outdir.check_out_dir`.
    """
    return check_out_dir(out_dir, marker=MARKER)


def write_debias(
    result: DebiasResult,
    out_dir: str | Path,
    *,
    formats: tuple[str, ...] = ("html", "png"),
) -> dict[str, Path]:
    """Write the children, the report and its figure into ``out_dir``.

    Args:
        result: from :func:`explorer.debias.debias`.
        out_dir: destination folder (replaced when it holds an earlier debias output).
        formats: figure formats (HTML always works; PNG where static export works).

    Returns:
        ``{"report": path, "figures": dir, <child name>: checkpoint path, ...}``.

    Raises:
        InputError: a destination refused by :func:`check_debias_out`.
    """
    out = check_debias_out(out_dir)
    with staging(out) as tmp:
        written = {child.checkpoint.name: write_atomic(tmp / child.file_name, child.blob) for child in result.children}
        written["report"] = write_atomic(
            tmp / MARKER, json.dumps(_json_safe(result.report), indent=2, allow_nan=False).encode()
        )
        write_figures({"debias": debias_figure(result.report)}, tmp / "figures", formats=formats)
        written["figures"] = tmp / "figures"
        swap_into(tmp, out, ours=frozenset({MARKER, "figures", *(c.file_name for c in result.children)}))
        return {key: out / path.relative_to(tmp) for key, path in written.items()}
