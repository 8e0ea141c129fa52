"""Sidebar: what to analyse. ``show()`` returns the chosen :class:`Settings` (or None while inputs are bad).

Uploads are parsed from memory (never written under a name taken from the user) and kept per session,
keyed by content hash, so a rerun does not parse them again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import streamlit as st

from explorer.attribution import METHODS, TARGETS
from explorer.checkpoints import Checkpoint, load_checkpoint
from explorer.config import Limits
from explorer.device import DEVICE_CHOICES, describe_device, select_device
from explorer.errors import InputError
from explorer.readers import source_choices
from explorer.spec import RunSpec
from explorer.study import Study
from explorer.volume import AXES, Mask, Volume, load_mask, load_volume

from . import resources
from .guard import guard

# Extensions plus the MIME types browsers give them (Chromium sends .nii.gz as application/gzip, which the
# uploader would otherwise refuse); the loader checks the magic bytes whatever the name says.
VOLUME_TYPES = ["nii", "gz", "nii.gz", "tif", "tiff", "nrrd", "mha", "mgz", "mgh", "h5", "hdf5", "dcm", "ima", "zip",
                "application/gzip", "application/x-gzip", "application/zip"]
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "zip"]
SAMPLE_LABEL = "Sample: MNI152 T1 (2 mm) + grey-matter mask"
MAX_PARSED_UPLOADS = 8  # parsed uploads kept per session (volume, mask, a few checkpoints)


@dataclass(frozen=True, eq=False)
class Settings:
    """Everything one analysis needs; ``key`` identifies it (content hashes and parameters)."""

    study: Study
    checkpoints: tuple[Checkpoint, ...]
    spec: RunSpec

    @property
    def key(self) -> tuple:
        return (tuple(self.study.key().values()), tuple(c.sha256 for c in self.checkpoints),
                json.dumps(self.spec.record(), sort_keys=True, default=str))


def show() -> Settings | None:
    """Render the sidebar; return the settings, or None when an input is missing or bad (message shown)."""
    sb = st.sidebar
    sb.header("Inputs")
    volume, mask = _volume_and_mask(sb)
    checkpoints = _checkpoints(sb)
    sb.header("Analysis")
    axis = sb.selectbox("Slicing axis", ["as trained (checkpoint)", *AXES], key="axis",
                        help="Default: the axis each checkpoint was trained on (axial for the shipped zoo).")
    method = sb.selectbox("Attribution method", list(METHODS), key="method",
                          format_func=lambda m: f"{m} — {METHODS[m].description}"[:70])
    target = sb.selectbox("Target", list(TARGETS), key="target",
                          format_func=lambda t: f"{t} — {TARGETS[t].description}"[:70])
    if target == "mask" and mask is None:
        sb.warning("Target 'mask' needs a mask: add one above.")
        return None
    choices = ["auto", *[d for d in DEVICE_CHOICES[1:] if _available(d)]]
    device = sb.selectbox("Device", choices, key="device")
    with guard("Device"):
        sb.caption(f"Computing on **{describe_device(select_device(device))}**")
    if volume is None or not checkpoints:
        return None
    spec = RunSpec(method=method, target=target, axis=None if axis.startswith("as trained") else axis,
                   device=device, keep_maps=True)
    return Settings(Study(volume, mask), tuple(checkpoints), spec)


def _available(device: str) -> bool:
    try:
        select_device(device)
    except InputError:
        return False
    return True


def _volume_and_mask(sb) -> tuple[Volume | None, Mask | None]:
    limits = Limits.from_env()
    source = sb.radio("Volume", [SAMPLE_LABEL, "Upload a scan"], key="volume_source")
    if source == SAMPLE_LABEL:
        volume, sample_mask = resources.sample()
        use_mask = sb.checkbox("Use the sample's grey-matter mask", value=True, key="sample_mask")
        return volume, sample_mask if use_mask else None
    uploads = sb.file_uploader(f"Scan (NIfTI, TIFF stack, NRRD, .mha, MGZ, HDF5, DICOM files or .zip; up to "
                               f"{limits.max_bytes // 1024**2} MB)", type=VOLUME_TYPES, accept_multiple_files=True,
                               key="volume_upload", help="Select every file of a DICOM series at once, or zip them.")
    if not uploads:
        sb.info("Upload a scan to analyse it.")
        return None, None
    data = uploads[0].getvalue() if len(uploads) == 1 else [(u.name, u.getvalue()) for u in uploads]
    name = uploads[0].name if len(uploads) == 1 else f"{len(uploads)} files"
    digest = _digest(data)
    choice = _parse_once(digest, name, lambda: source_choices(data, limits, name=name), "choices")
    if choice is None:
        return None, None
    param, options = choice
    picked = {param: sb.selectbox(f"{param.capitalize()} to analyse", options, key="volume_choice")} \
        if len(options) > 1 else {}
    volume = _parse_once(digest, name, lambda: load_volume(data, name=name, limits=limits, **picked),
                         f"volume-{picked}")
    if volume is None:
        return None, None
    sb.caption(f"{volume.source}: {volume.shape} voxels, spacing {tuple(round(s, 3) for s in volume.spacing)}")
    mask_upload = sb.file_uploader("Mask (optional, same grid)", type=VOLUME_TYPES, key="mask_upload")
    mask = None
    if mask_upload is not None:
        mask = _parse(mask_upload, lambda raw, name: load_mask(raw, volume, name=name, limits=limits),
                      f"mask-{volume.sha256}")
    return volume, mask


def _checkpoints(sb) -> list[Checkpoint]:
    with guard("Loading the model zoo"):
        zoo = resources.zoo()
    chosen = sb.multiselect("Checkpoints (models/)", list(zoo), default=list(zoo), key="zoo_choice")
    found = [zoo[name] for name in chosen]
    uploads = sb.file_uploader("Add checkpoints (.safetensors, smp folder .zip, or state dict .pt)",
                               type=CHECKPOINT_TYPES, accept_multiple_files=True, key="checkpoint_upload")
    for upload in uploads or []:
        meta = _plain_state_dict_meta(sb, upload.name) if upload.name.endswith((".pt", ".pth")) else None
        checkpoint = _parse(upload, lambda raw, name, meta=meta: _upload_checkpoint(raw, name, meta),
                            f"checkpoint-{meta}")
        if checkpoint is not None:
            found.append(checkpoint)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        sb.error("Two checkpoints share a name: rename one of the uploaded files.")
        return []
    if not found:
        sb.info("Choose at least one checkpoint.")
    return found


def _upload_checkpoint(raw: bytes, name: str, meta: dict | None) -> Checkpoint:
    """Messages name the uploaded file; the checkpoint is shown under the file's stem."""
    return replace(load_checkpoint(raw, name=name, meta=meta), name=name.rsplit(".", 1)[0])


def _plain_state_dict_meta(sb, name: str) -> dict:
    """A plain state dict carries no metadata: the user supplies it."""
    with sb.expander(f"Metadata for {name}", expanded=True):
        return {
            "arch": st.text_input("Architecture", "Unet", key=f"arch-{name}"),
            "encoder": st.text_input("Encoder", "mobilenet_v2", key=f"encoder-{name}"),
            "strategy": st.text_input("Strategy", "imagenet", key=f"strategy-{name}"),
            "offsets": [int(o) for o in st.text_input("Offsets", "-1,0,1", key=f"offsets-{name}").split(",")
                        if o.strip().lstrip("-").isdigit()],
            "normalisation": st.text_input("Normalisation", "zscore", key=f"norm-{name}"),
        }


def _digest(data: bytes | list[tuple[str, bytes]]) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha256("".join(sorted(hashlib.sha256(b).hexdigest() for _, b in data)).encode()).hexdigest()


def _parse(upload, loader, kind: str):
    """Parse an upload once per session and content; show the error (never a traceback) when it is bad."""
    raw = upload.getvalue()
    return _parse_once(_digest(raw), upload.name, lambda: loader(raw, upload.name), kind)


def _parse_once(digest: str, name: str, load, kind: str):
    """``load()`` once per session, content and ``kind``; None (message shown) when it raises."""
    key = ("parsed", kind, digest)
    cache = st.session_state.setdefault("_uploads", {})
    if key not in cache:
        with guard(f"Reading {name}", where=st.sidebar) as ok:
            cache[key] = load()
        if not ok:
            return None
        while len(cache) > MAX_PARSED_UPLOADS:  # a long session must not keep every file it ever saw
            cache.pop(next(iter(cache)))
    return cache[key]
