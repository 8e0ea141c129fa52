"""Write a :class:`explorer.cohort.Cohort` to a directory: ``cohort.csv``, ``cohort_summary.json``, ``figures/``
and, when asked, ``volumes/<subject>/`` (the files ``explorer analyze`` writes, from the cache).

As :func:`explorer.reporting.outputs.write_outputs`, everything is written into a temporary folder beside the
destination and moved into place only when complete.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io.files import write_atomic
from ..outdir import staging
from ..reporting.export import table_csv, write_figures
from ..reporting.figures.cohort import cohort_figures
from ..reporting.outputs import _json_safe, _safe, check_out_dir, swap_into, write_outputs
from . import Cohort

__all__ = ["PUBLIC_COLUMNS_DROPPED", "COHORT_NAMES", "write_cohort"]


PUBLIC_COLUMNS_DROPPED = ("from_cache", "volume_sha256", "held_out")
#: What a cohort writes into its folder (other files already there are kept when it is replaced).
COHORT_NAMES = frozenset({"cohort.csv", "cohort_summary.json", "figures", "volumes"})


def write_cohort(
    cohort: Cohort,
    out_dir: str | Path,
    *,
    per_volume: bool = False,
    figures: bool = True,
    figure_preset: str = "screen",
) -> dict[str, Path]:
    """Write the cohort's files into ``out_dir`` (created if missing; our files in it are replaced).

    Args:
        cohort: the result of :func:`explorer.cohort.run_cohort`.
        out_dir: destination directory.
        per_volume: also write each volume's ``analyze`` outputs under ``volumes/<subject>/`` (the pairs come
            from the cache, so nothing is recomputed when the cache directory is shared with the workers).
        figures: write ``figures/``.
        figure_preset: a key of :data:`explorer.reporting.export.PRESETS`.

    Returns:
        ``{"csv": path, "summary": path, ["figures": dir], ["volumes": dir]}``.

    Raises:
        InputError: a destination refused by :func:`explorer.reporting.outputs.check_out_dir`.
    """
    out = check_out_dir(out_dir, marker="cohort_summary.json")
    with staging(out) as tmp:
        written = {"csv": tmp / "cohort.csv", "summary": tmp / "cohort_summary.json"}
        public = cohort.rows.drop(columns=list(PUBLIC_COLUMNS_DROPPED), errors="ignore")
        write_atomic(written["csv"], table_csv(public, float_format=None))
        written["summary"].write_text(json.dumps(_json_safe(cohort.summary), indent=2, allow_nan=False))
        if figures:
            written["figures"] = tmp / "figures"
            write_figures(cohort_figures(cohort.rows, cohort.summary), written["figures"], preset=figure_preset)
        if per_volume:
            written["volumes"] = _write_volumes(cohort, tmp / "volumes", figure_preset)
        swap_into(tmp, out, ours=COHORT_NAMES)
        return {key: out / path.relative_to(tmp) for key, path in written.items()}


def _write_volumes(cohort: Cohort, directory: Path, preset: str) -> Path:
    from ..analysis import analyze, default_cache
    from ..models.checkpoints import load_checkpoint
    from ..study import Study

    directory.mkdir()
    bad = set(cohort.rows.loc[cohort.rows["error"].notna(), "subject"])
    ckpts = [load_checkpoint(m.path, name=m.name) for m in cohort.models]
    for entry in cohort.entries:
        if entry.subject in bad:
            continue
        analysis = analyze(Study.load(entry.volume, entry.mask), ckpts, cohort.spec, cache=default_cache())
        write_outputs(analysis, directory / _safe(entry.subject), figure_preset=preset)
    return directory
