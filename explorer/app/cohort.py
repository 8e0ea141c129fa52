"""The Cohort view: a manifest under the data root (or an uploaded zip), checkpoints from the zoo, a run with a
progress bar, then the forest plot, paired lines, share distributions, tables and exports.

The computation is :func:`explorer.cohort.run_cohort`, the function ``explorer cohort`` calls (local executor),
run in a background job like the single-volume analysis (:func:`explorer.app.jobs.start_cohort`): the page stays
responsive, shows the volumes done so far and can cancel. Session state keys: ``cohort_job`` (the running job),
``cohort`` (the last result) and ``cohort_note`` (what the last run said: an error, a cancellation).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.cohort import DEFAULT_MARGIN, read_manifest
from explorer.cohort.outputs import write_cohort
from explorer.config import SAMPLE_DIR, Limits
from explorer.errors import InputError
from explorer.io.readers import HEADER_LIMIT, refuse_detached
from explorer.models.checkpoints import list_seeds, list_zoo
from explorer.reporting.export import report_zip
from explorer.reporting.figures.cohort import forest_figure, paired_lines_figure, share_distribution_figure
from explorer.reporting.figures.tables import cohort_rows_table
from explorer.spec import RunSpec

from . import jobs
from .guard import guard
from .views import figure_downloads, table_download

MAX_ZIP_MEMBERS = 2000
POLL_SECONDS = 1.0


def data_root() -> Path:
    """``EXPLORER_DATA_ROOT``, else the repository's ``sample_data/``."""
    return Path(os.environ.get("EXPLORER_DATA_ROOT") or SAMPLE_DIR)


def find_manifests(root: Path, max_depth: int = 3) -> list[Path]:
    """CSV files at most ``max_depth`` folders below ``root`` that have a ``volume`` column, sorted."""
    found = []
    for path in sorted(root.rglob("*.csv")):
        if len(path.relative_to(root).parts) <= max_depth and _has_volume_column(path):
            found.append(path)
    return found


def _has_volume_column(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return "volume" in [c.strip() for c in handle.readline().split(",")]
    except (OSError, UnicodeDecodeError):
        return False


def extract_zip(raw: bytes, directory: Path, limits: Limits | None = None) -> Path:
    """Extract an uploaded zip safely and return its manifest (the shallowest ``.csv``) or the folder.

    Refused: members with absolute paths or ``..``, links, more than :data:`MAX_ZIP_MEMBERS` members, more
    than the upload limit uncompressed (checked from the headers before anything is written, and again while
    writing, since headers can lie), or NRRD/MetaImage headers naming a separate data file (an upload must carry
    its voxels; :func:`explorer.io.readers.refuse_detached`).

    Raises:
        InputError: not a zip, or any of the above.
    """
    limits = limits or Limits.from_env()
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as exc:
        raise InputError("upload", "is not a zip archive", "a .zip holding volumes and a manifest.csv") from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise InputError("upload", f"{len(members)} files", f"at most {MAX_ZIP_MEMBERS}")
    if sum(m.file_size for m in members) > limits.max_bytes:
        raise InputError("upload", "uncompressed size over the upload limit", f"at most {limits.max_bytes:,} bytes")
    for m in members:  # an uploaded header may not name a data file: checked before anything is written
        with archive.open(m) as source:
            refuse_detached(m.filename, source.read(HEADER_LIMIT + 1))
    root = directory.resolve()
    written = 0
    for m in members:
        target = (root / m.filename).resolve()
        if Path(m.filename).is_absolute() or ".." in Path(m.filename).parts or not target.is_relative_to(root):
            raise InputError("upload", f"member {m.filename!r} points outside the archive", "relative paths")
        if (m.external_attr >> 16) & 0o170000 == 0o120000:
            raise InputError("upload", f"member {m.filename!r} is a link", "regular files")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(m) as source, open(target, "wb") as sink:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > limits.max_bytes:
                    raise InputError(
                        "upload", "uncompressed size over the upload limit", f"at most {limits.max_bytes:,} bytes"
                    )
                sink.write(chunk)
    manifests = sorted(root.rglob("*.csv"), key=lambda p: (len(p.parts), str(p)))
    return manifests[0] if manifests else root


def _choose_manifest() -> tuple[Path, Path] | None:
    """The chosen manifest and the root its paths must stay inside, or None."""
    source = st.radio("Manifest", ["From the data root", "Upload a zip"], horizontal=True, key="cohort_source")
    if source == "Upload a zip":
        upload = st.file_uploader("Zip of volumes (and masks) with a manifest.csv", type=["zip"], key="cohort_zip")
        if upload is None:
            return None
        directory = Path(st.session_state.setdefault("cohort_upload_dir", tempfile.mkdtemp(prefix="cohort-")))
        with guard("Reading the zip") as ok:
            manifest = extract_zip(upload.getvalue(), directory)
        return (manifest, directory) if ok else None
    root = data_root()
    manifests = find_manifests(root) if root.is_dir() else []
    if not manifests:
        st.warning(f"No manifest (a CSV with a volume column) under {root}; set EXPLORER_DATA_ROOT.")
        return None
    choice = st.selectbox(
        "Manifest under " + str(root), [str(p.relative_to(root)) for p in manifests], key="cohort_manifest"
    )
    return root / choice, root


def show() -> None:
    """The Cohort page."""
    st.header("Cohort: many volumes × checkpoints, the volume and the model as units")
    chosen = _choose_manifest()
    if chosen is None:
        return
    manifest, root = chosen
    with guard("Reading the manifest") as ok:
        entries = read_manifest(manifest, root=root)
    if not ok:
        return
    zoo = {p.stem.removesuffix(".safetensors"): p for p in list_zoo() + list_seeds()}
    shipped = {p.stem for p in list_zoo()}
    names = st.multiselect(
        "Checkpoints",
        list(zoo),
        default=[n for n in zoo if n in shipped],
        key="cohort_checkpoints",
        help="The shipped seed 0 of each strategy, then seeds 1 and 2 when models/train_zoo.py "
        "has trained them into models/seeds/.",
    )
    count = st.number_input(
        "Volumes (the manifest's first N)", min_value=1, max_value=len(entries), value=len(entries), key="cohort_count"
    )
    margin = st.number_input(
        "Equivalence margin", min_value=0.001, value=DEFAULT_MARGIN, step=0.005, format="%.3f", key="cohort_margin"
    )
    state = st.session_state
    _collect()
    running = "cohort_job" in state
    if (
        st.button(
            "Run cohort",
            type="primary",
            key="cohort_run",
            disabled=not names or running,
            help="Runs in the background: the page stays usable, and the run can be cancelled.",
        )
        and not running
    ):
        state.pop("cohort_note", None)
        chosen = entries[: int(count)]
        state["cohort_job"] = jobs.start_cohort(
            (str(manifest), tuple(names), len(chosen), float(margin)),
            chosen,
            [zoo[n] for n in names],
            RunSpec(),
            margin=float(margin),
        )
        st.rerun()  # the page again, now with the button disabled and the job's progress
    if running:
        _progress_panel()
    elif (note := state.get("cohort_note")) is not None:
        getattr(st, note[0])(note[1])
    cohort = state.get("cohort")
    if cohort is not None:
        _results(cohort)


def _collect() -> None:
    """Move a finished cohort job's result, or what went wrong, into the session."""
    state = st.session_state
    job = state.get("cohort_job")
    if job is None or job.running:
        return
    del state["cohort_job"]
    if job.result is not None:
        state["cohort"] = job.result
    elif job.cancelled:
        state["cohort_note"] = ("warning", "The cohort run was cancelled: the results shown are the previous ones.")
    else:
        state["cohort"] = None  # as before the job: a failed run shows its message, not an older result
        state["cohort_note"] = ("error", job.error or "The cohort failed.")


@st.fragment(run_every=POLL_SECONDS)
def _progress_panel() -> None:
    job = st.session_state.get("cohort_job")
    if job is None or not job.running:
        st.rerun()  # the whole page picks up the result
        return
    c1, c2 = st.columns([6, 1])
    c1.progress(job.fraction, text=job.status())
    if c2.button("Cancel", key="cohort_cancel", help="Stops after the volume being analysed."):
        job.cancel()
        c1.caption("Cancelling…")


def _results(cohort) -> None:
    summary, rows = cohort.summary, cohort.rows
    st.caption(
        f"{len(cohort.entries)} volume(s) × {len(cohort.models)} checkpoint(s); {cohort.from_cache} "
        f"pair(s) from the cache."
    )
    if cohort.errors:
        st.warning(f"{len(cohort.errors)} pair(s) failed: " + "; ".join(cohort.errors[:3]))
    for fig, name in (
        (forest_figure(rows, summary), "cohort_forest"),
        (paired_lines_figure(rows, summary["endpoint"]), "cohort_paired"),
        (share_distribution_figure(rows), "cohort_shares"),
    ):
        st.plotly_chart(fig, key=f"fig-{name}")
        figure_downloads(fig, name)
    equivalent = f"mean |value| < {summary['equivalence_margin']['margin']:g} (magnitude equivalence)"
    groups = pd.DataFrame(
        [
            {
                "group": n,
                "models": g["n_models"],
                "volumes": g["n_volumes"],
                summary["endpoint"]: g[g["endpoint"]]["mean"],
                "CI low": g[g["endpoint"]]["ci95"][0],
                "CI high": g[g["endpoint"]]["ci95"][1],
                "held-out Dice": (g["dice"] or {}).get("mean"),
                equivalent: summary["equivalence"][n]["equivalent"],
            }
            for n, g in summary["groups"].items()
        ]
    )
    st.subheader("Groups")
    st.dataframe(groups, hide_index=True)
    table_download(groups, "cohort_groups")
    if summary["comparisons"]:
        st.subheader("Between groups (Holm-corrected over all tests)")
        comparisons = pd.DataFrame(summary["comparisons"])
        st.dataframe(comparisons[["a", "b", "unit", "n", "statistic", "effect_size", "p", "p_holm"]], hide_index=True)
        st.caption(
            " · ".join(
                f"**{unit}**: {test}; effect size: {kind}"
                for unit, test, kind in comparisons[["unit", "test", "effect_size_kind"]]
                .drop_duplicates()
                .itertuples(index=False)
            )
        )
        table_download(comparisons, "cohort_comparisons")
    st.subheader("Per volume × checkpoint")
    shown = cohort_rows_table(rows)
    st.dataframe(shown, hide_index=True)
    table_download(shown, "cohort")
    st.download_button(
        "Download cohort report (.zip)",
        type="primary",
        key="dl-cohort-report",
        on_click="ignore",
        data=lambda: report_zip(lambda d: write_cohort(cohort, d), parameters=summary["inputs"]),
        file_name="explorer-cohort.zip",
        mime="application/zip",
    )
    st.download_button(
        "cohort_summary.json",
        data=json.dumps(summary, indent=2, default=str),
        file_name="cohort_summary.json",
        mime="application/json",
        key="dl-cohort-summary",
        on_click="ignore",
    )
