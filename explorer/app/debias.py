"""The Debias view: make a debiased child of a loaded checkpoint and compare it with its parent.

The computation is :func:`explorer.debias.debias`, the function ``explorer debias`` calls, run as a background
job (:func:`explorer.app.jobs.start_debias`) with progress, time left and Cancel. When it finishes, its children
join the sidebar's checkpoint list right after their parent (:func:`collect`, before the sidebar is drawn) and
the analysis runs again, so every view shows them beside the parent, in the parent's hue, lighter. A page
reloaded during a run finds the running job again (by its key), and a finished run's children in the cache.

Session state keys: ``debias_job`` (the running job), ``debias_result`` (the last result), ``debias_children``
(``{name: Child}``, every child made this session), ``debias_note`` (what the last run said),
``debias_upload_dir`` (an extracted cohort zip).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import streamlit as st

from explorer.analysis import Analysis
from explorer.debias import MODES, VARIANTS, Child, DebiasData, DebiasSpec, check_inputs
from explorer.debias.run import children_cached
from explorer.models.checkpoints import Checkpoint
from explorer.reporting.figures.debias import debias_figure, debias_table
from explorer.reporting.figures.tables import format_table
from explorer.spec import RunSpec

from . import jobs, resources
from .cohort import extract_zip
from .guard import guard
from .views import figure_downloads, table_download

POLL_SECONDS = 1.0
CURRENT = "The current scan and mask"
COHORT = "A cohort zip (manifest with a train/test split)"


def with_children(names: Sequence[str], children: Mapping[str, str]) -> list[str]:
    """``names`` with each child (``{child: parent}``) placed right after its parent (or its parent's last
    child); children of a parent not in ``names`` go last. Pure: the sidebar's order and the selection."""
    out = [n for n in names if n not in children]
    for child, parent in children.items():
        if child in out:
            continue
        after = [i for i, n in enumerate(out) if n == parent or children.get(n) == parent]
        out.insert(after[-1] + 1 if after else len(out), child)
    return out


def collect() -> None:
    """Move a finished job's result into the session; its children join the checkpoint selection and the
    analysis re-runs (call before the sidebar is drawn: it sets the sidebar's widget state)."""
    state = st.session_state
    job = state.get("debias_job")
    if job is None or job.running:
        return
    del state["debias_job"]
    if job.result is None:
        state["debias_note"] = (
            ("warning", "Debiasing was cancelled.") if job.cancelled else ("error", job.error or "Debiasing failed.")
        )
        return
    state["debias_result"] = job.result
    children = state.setdefault("debias_children", {})
    for child in job.result.children:
        children[child.checkpoint.name] = child
    chosen = list(state.get("zoo_choice", []))
    parent = [job.result.parent.name] if job.result.parent.name in resources.zoo() else []  # an upload stays one
    chosen += [n for n in (*parent, *children) if n not in chosen]
    state["zoo_choice"] = with_children(chosen, child_parents())
    state["run_now"] = True
    cached = sum(1 for c in job.result.children if c.record.get("from_cache"))
    state["debias_note"] = (
        "success",
        f"Made {len(job.result.children)} child(ren) of {job.result.parent.name} in "
        f"{job.elapsed():.0f} s"
        + (f" ({cached} from the cache)" if cached else "")
        + "; they now sit beside their parent in the checkpoint list and every view.",
    )


def child_parents() -> dict[str, str]:
    """``{child name: parent name}`` of the children made this session."""
    children: dict[str, Child] = st.session_state.get("debias_children", {})
    return {name: c.checkpoint.meta.training["debias"]["parent"]["name"] for name, c in children.items()}


def child_checkpoints() -> dict[str, Checkpoint]:
    """``{child name: checkpoint}`` of the children made this session (the sidebar lists them)."""
    return {name: c.checkpoint for name, c in st.session_state.get("debias_children", {}).items()}


def show(analysis: Analysis) -> None:
    """The Debias view for the analysed scan and checkpoints."""
    st.markdown(
        "Make a debiased **child** of a checkpoint: the first convolution's kernels of mirrored "
        "neighbours tied (surgery), then optionally fine-tuned or retrained. Children join the checkpoint "
        "list beside their parent, so every view compares them."
    )
    state = st.session_state
    parent_name = st.selectbox("Checkpoint to debias", list(analysis.checkpoints), key="debias_parent")
    variants = st.multiselect(
        "Variants",
        list(VARIANTS),
        default=["surgery"],
        key="debias_variants",
        help="; ".join(f"**{k}**: {v}" for k, v in VARIANTS.items()),
    )
    c1, c2, c3 = st.columns(3)
    mode = c1.radio(
        "Surgery",
        list(MODES),
        horizontal=True,
        key="debias_mode",
        help="; ".join(f"**{k}**: {v}" for k, v in MODES.items()),
    )
    epochs = int(
        c2.number_input("Epochs (finetune, retrain)", min_value=1, max_value=100, value=2, key="debias_epochs")
    )
    freeze = c3.checkbox("Freeze the encoder", key="debias_freeze", help="Fine-tune the decoder and head only.")
    data = _data(analysis)
    if data is None or not variants:
        st.info("Choose at least one variant." if data is not None else "Upload a cohort zip.")
        _result()
        return
    with guard("Checking the inputs") as ok:
        spec = DebiasSpec(
            variants=tuple(variants), mode=mode, epochs=epochs, freeze_encoder=freeze, device=analysis.spec.device
        )
        parent = analysis.checkpoints[parent_name]
        check_inputs(parent, data, spec)
    if not ok:
        _result()
        return
    key = (parent.sha256, json.dumps(data.key(), sort_keys=True, default=str), json.dumps(spec.record()))
    if "debias_job" not in state and (job := jobs.find_debias(key)) is not None:
        state["debias_job"] = job  # a page reloaded during the run
    running = "debias_job" in state
    clicked = st.button("Debias", type="primary", key="debias_run", disabled=running)
    last = state.get("debias_result")
    found = (
        not running
        and (last is None or last.parent.sha256 != parent.sha256)
        and "debias_note" not in state
        and children_cached(parent, data, spec)
    )
    if (clicked or found) and not running:
        state.pop("debias_note", None)
        state["debias_job"] = jobs.start_debias(key, parent, data, spec, _analysis_spec(analysis))
    if "debias_job" in state:
        _progress_panel()
    elif (note := state.get("debias_note")) is not None:
        getattr(st, note[0])(note[1])
    _result()


def _analysis_spec(analysis: Analysis) -> RunSpec:
    """The default method with the page's axis, device and maps, so the views reuse the children's results."""
    return RunSpec(axis=analysis.spec.axis, device=analysis.spec.device, keep_maps=analysis.spec.keep_maps)


def _data(analysis: Analysis) -> DebiasData | None:
    source = st.radio("Training data", [CURRENT, COHORT], horizontal=True, key="debias_data")
    if source == CURRENT:
        return DebiasData(study=analysis.study)
    upload = st.file_uploader(
        "Zip of volumes and masks with a manifest.csv (a split column: train/test)", type=["zip"], key="debias_zip"
    )
    if upload is None:
        return None
    directory = Path(st.session_state.setdefault("debias_upload_dir", tempfile.mkdtemp(prefix="debias-")))
    with guard("Reading the zip") as ok:
        manifest = extract_zip(upload.getvalue(), directory)
        data = DebiasData.from_manifest(manifest, root=directory)
    return data if ok else None


@st.fragment(run_every=POLL_SECONDS)
def _progress_panel() -> None:
    job = st.session_state.get("debias_job")
    if job is None or not job.running:
        st.rerun()  # the whole page collects the result
        return
    c1, c2 = st.columns([6, 1])
    c1.progress(job.fraction, text=job.status())
    if c2.button("Cancel", key="debias_cancel", help="Stops at the next batch; nothing is added."):
        job.cancel()
        c1.caption("Cancelling…")


def _result() -> None:
    result = st.session_state.get("debias_result")
    if result is None:
        return
    st.subheader(f"{result.parent.name} and its children")
    table = debias_table(result.report)
    st.dataframe(format_table(table), hide_index=True)
    table_download(table, "debias")
    fig = debias_figure(result.report)
    st.plotly_chart(fig, key="fig-debias")
    figure_downloads(fig, "debias")
    cols = st.columns(len(result.children) + 1)
    for col, child in zip(cols, result.children, strict=False):
        col.download_button(
            f"⬇ {child.file_name}",
            data=child.blob,
            file_name=child.file_name,
            mime="application/octet-stream",
            key=f"dl-child-{child.checkpoint.name}",
            on_click="ignore",
        )
    cols[-1].download_button(
        "⬇ debias.json",
        data=json.dumps(result.report, indent=2, default=str),
        file_name="debias.json",
        mime="application/json",
        key="dl-debias-json",
        on_click="ignore",
    )
