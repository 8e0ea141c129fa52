"""Sidebar: what to analyse. ``show()`` returns the chosen :class:`Settings`, or the reason there are none.

A bad input blocks the analysis (the reason is returned and shown beside the disabled Analyse button): in
particular a rejected mask never lets a run go silently without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer.attribution.methods import DEFAULT_METHOD, METHODS, TARGETS
from explorer.config import Limits
from explorer.device import DEVICE_CHOICES, describe_device, select_device
from explorer.errors import InputError
from explorer.io.readers import source_choices
from explorer.io.volume import AXES, Mask, Volume, load_mask, load_volume
from explorer.models.checkpoints import Checkpoint, list_zoo
from explorer.reporting.figures.style import display_names, strategy_of
from explorer.spec import RunSpec
from explorer.study import Study

from . import debias, resources, uploads
from .guard import guard

# Extensions plus the MIME types browsers give them (Chromium sends .nii.gz as application/gzip, which the
# uploader would otherwise refuse); the loader checks the magic bytes whatever the name says.
VOLUME_TYPES = [
    "nii",
    "gz",
    "nii.gz",
    "tif",
    "tiff",
    "nrrd",
    "mha",
    "mgz",
    "mgh",
    "h5",
    "hdf5",
    "dcm",
    "ima",
    "zip",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
]
SAMPLE_LABEL = "Sample: MNI152 T1 (2 mm) + grey-matter mask"
NO_GEOMETRY = (".tif", ".tiff", ".h5", ".hdf5")  # formats whose voxel size the user may have to give


class Blocked(str):
    """Why no analysis can start (shown beside the disabled Analyse button)."""


@dataclass(frozen=True, eq=False)
class Settings:
    """Everything one analysis needs; ``key`` identifies it (content hashes and parameters)."""

    study: Study
    checkpoints: tuple[Checkpoint, ...]
    spec: RunSpec

    @property
    def key(self) -> tuple:
        return (
            tuple(self.study.key().values()),
            tuple(c.sha256 for c in self.checkpoints),
            json.dumps(self.spec.record(), sort_keys=True, default=str),
        )


#: What the select box says of the methods whose benchmark result a user should see when choosing (short enough
#: for the sidebar's width; each method's description is in the box's help).
METHOD_LABELS = {DEFAULT_METHOD: f"{DEFAULT_METHOD} (validated default)", "saliency": "saliency (the paper's)"}


def show() -> Settings | Blocked:
    """Render the sidebar; return the settings, or why the inputs cannot be analysed (message shown)."""
    sb = st.sidebar
    sb.header("Inputs")
    volume, mask, problem = _volume_and_mask(sb)
    checkpoints = _checkpoints(sb)
    sb.header("Analysis")
    axis = sb.selectbox(
        "Slicing axis",
        ["as trained (checkpoint)", *AXES],
        key="axis",
        help="Default: the axis each checkpoint was trained on (axial for the shipped zoo).",
    )
    method = sb.selectbox(
        "Attribution method",
        list(METHODS),
        key="method",
        index=list(METHODS).index(DEFAULT_METHOD),
        format_func=lambda m: METHOD_LABELS.get(m, m),
        help="How much the prediction depends on each input channel (slice z−1, z, z+1). "
        f"The default, **{DEFAULT_METHOD}** (each channel replaced by its mean), recovers "
        "planted dependencies for every initialisation (`explorer validate`). **saliency** "
        "is the paper's measure: it reads the first convolution's per-channel weighting and "
        "gave the wrong sign, or nothing, on networks trained on a planted dependence.\n\n"
        + "\n".join(f"- **{m}**: {METHODS[m].description}" for m in METHODS),
    )
    target = sb.selectbox(
        "Target",
        list(TARGETS),
        key="target",
        help="Which pixels' output is explained: the predicted foreground by default.\n\n"
        + "\n".join(f"- **{t}**: {TARGETS[t].description}" for t in TARGETS),
    )
    choices = ["auto", *[d for d in DEVICE_CHOICES[1:] if _available(d)]]
    device = sb.selectbox("Device", choices, key="device")
    with guard("Device"):
        sb.caption(f"Computing on **{describe_device(select_device(device))}**")
    if problem is not None:
        return problem
    if target == "mask" and mask is None:
        return Blocked("Target 'mask' needs a mask: add one above, or choose another target.")
    if volume is None:
        return Blocked("Choose a volume: the sample, or upload a scan.")
    if not checkpoints:
        return Blocked("Choose at least one checkpoint.")
    spec = RunSpec(
        method=method,
        target=target,
        axis=None if axis.startswith("as trained") else axis,
        device=device,
        keep_maps=True,
    )
    return Settings(Study(volume, mask), tuple(checkpoints), spec)


def chip_labels(names, summary: dict | None = None) -> dict[str, str]:
    """``{name: label}`` for the checkpoint pickers: what tells a zoo checkpoint apart (``imagenet-zflip, seed 1``,
    the figures' label) for names that spell their strategy, the name itself for others (an upload's
    ``my_model``); every name when two labels would be alike.

    Args:
        names: checkpoint names.
        summary: ``{"models": {name: entry}}`` with each entry's ``strategy`` and ``training`` (seed), or None.
    """
    names = list(names)
    short = display_names(names, summary) if names else {}
    labels = {n: short[n] if strategy_of(n) is not None else n for n in names}
    return labels if len(set(labels.values())) == len(labels) else {n: n for n in names}


def _available(device: str) -> bool:
    try:
        select_device(device)
    except InputError:
        return False
    return True


def _volume_and_mask(sb) -> tuple[Volume | None, Mask | None, Blocked | None]:
    limits = Limits.from_env()
    source = sb.radio("Volume", [SAMPLE_LABEL, "Upload a scan"], key="volume_source")
    if source == SAMPLE_LABEL:
        volume, sample_mask = resources.sample()
        use_mask = sb.checkbox("Use the sample's grey-matter mask", value=True, key="sample_mask")
        return volume, sample_mask if use_mask else None, None
    files = sb.file_uploader(
        f"Scan (NIfTI, TIFF stack, NRRD, .mha, MGZ, HDF5, DICOM files or .zip; up to {limits.max_bytes // 1024**2} MB)",
        type=VOLUME_TYPES,
        accept_multiple_files=True,
        key="volume_upload",
        help="Select every file of a DICOM series at once, or zip them.",
    )
    files = uploads.unique_by_content(files or [])  # the same file twice is one scan, not a two-file series
    if not files:
        sb.info("Upload a scan to analyse it.")
        return None, None, None
    data = files[0].getvalue() if len(files) == 1 else [(u.name, u.getvalue()) for u in files]
    name = files[0].name if len(files) == 1 else f"{len(files)} files"
    digest = uploads.digest(data)
    choice = uploads.parse_once(digest, name, lambda: source_choices(data, limits, name=name), "choices")
    if choice is None:
        return None, None, Blocked(f"{name} could not be read (see the message above).")
    param, options = choice
    picked: dict = (
        {param: sb.selectbox(f"{param.capitalize()} to analyse", options, key="volume_choice")}
        if len(options) > 1
        else {}
    )
    if name.lower().endswith(NO_GEOMETRY):
        picked["spacing"] = _spacing(sb)
    volume = uploads.parse_once(
        digest, name, lambda: load_volume(data, name=name, limits=limits, **picked), f"volume-{picked}"
    )
    if volume is None:
        return None, None, Blocked(f"{name} could not be read (see the message above).")
    sb.caption(f"{volume.source}: {volume.shape} voxels, spacing {tuple(round(s, 3) for s in volume.spacing)}")
    mask_upload = sb.file_uploader("Mask (optional, same grid)", type=VOLUME_TYPES, key="mask_upload")
    if mask_upload is None:
        return volume, None, None
    mask = uploads.parse(
        mask_upload, lambda raw, name: load_mask(raw, volume, name=name, limits=limits), f"mask-{volume.sha256}"
    )
    if mask is None:
        return (
            volume,
            None,
            Blocked(
                f"The mask {mask_upload.name} was rejected (see the message above). Remove it "
                "or upload a mask on the scan's grid: Analyse stays blocked rather than run "
                "silently without a mask."
            ),
        )
    sb.caption(f"{mask_upload.name}: mask with {int(np.count_nonzero(mask.data)):,} foreground voxels")
    return volume, mask, None


def _spacing(sb) -> tuple[float, float, float] | None:
    """Voxel size for formats without geometry (TIFF, HDF5); None keeps the file's own metadata."""
    text = sb.text_input(
        "Voxel spacing x, y, z (mm)",
        "",
        key="volume_spacing",
        placeholder="from the file",
        help="TIFF and HDF5 files often carry no voxel size: give it here (e.g. 0.5, 0.5, 2). "
        "Empty: the file's own metadata, else 1 mm.",
    )
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        values = ()
    if len(values) == 3 and min(values) > 0:
        return values  # type: ignore[return-value]
    if text.strip():
        sb.warning("Voxel spacing: three positive numbers, e.g. 0.5, 0.5, 2 — using the file's metadata.")
    return None


def _checkpoints(sb) -> list[Checkpoint]:
    with guard("Loading the model zoo"):
        zoo = resources.zoo()
    shipped = {p.stem for p in list_zoo()}
    pool = {**zoo, **debias.child_checkpoints()}  # children made in the Debias view, each after its parent
    entries = {
        c.name: {
            "strategy": c.meta.strategy,
            "training": c.meta.training,
            "parent": (c.meta.training.get("debias") or {}).get("parent"),
        }
        for c in pool.values()
    }
    labels = chip_labels(entries, {"models": entries} if entries else None)
    chosen = sb.multiselect(
        "Checkpoints (models/)",
        debias.with_children(list(zoo), debias.child_parents()),
        default=[n for n in zoo if n in shipped],
        key="zoo_choice",
        format_func=lambda name: labels.get(name, name),
        help="The shipped checkpoints (one 2D+ U-Net per initialisation strategy, seed 0), then "
        "seeds 1 and 2 when models/train_zoo.py has trained them; children made in the "
        "Debias view follow their parent. Full names:\n\n"
        + "\n".join(f"- {label}: `{name}`" for name, label in labels.items()),
    )
    found = uploads.checkpoints(sb, [pool[name] for name in chosen], next(iter(zoo.values()), None))
    if not found:
        sb.info("Choose at least one checkpoint.")
    return found
