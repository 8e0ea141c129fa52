"""Parsing uploads once per session and content, and the checkpoint uploads with their metadata form.

An upload is parsed from memory (never written under a name taken from the user) and kept per session, keyed
by content hash, so a rerun does not parse it again. The same file uploaded twice counts once; two different
files with one name are both kept, the second under a numbered name: nothing already chosen is dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import streamlit as st

from explorer.io.normalise import NORMALISATIONS
from explorer.io.volume import AXES
from explorer.models.build import ARCHS
from explorer.models.checkpoints import Checkpoint, load_checkpoint
from explorer.models.strategies import STRATEGIES
from explorer.reporting.figures.style import offset_label

from .guard import guard

CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "zip"]
MAX_PARSED_UPLOADS = 8  # parsed uploads kept per session (volume, mask, a few checkpoints)


def digest(data: bytes | list[tuple[str, bytes]]) -> str:
    """SHA-256 of one upload, or of a set of uploads whatever their order."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha256("".join(sorted(hashlib.sha256(b).hexdigest() for _, b in data)).encode()).hexdigest()


def unique_by_content(uploads: list) -> list:
    """The uploads without repeats of the same bytes (the first of each kept, order kept)."""
    seen, kept = set(), []
    for upload in uploads:
        d = digest(upload.getvalue())
        if d not in seen:
            seen.add(d)
            kept.append(upload)
    return kept


def parse_once(digest_: str, name: str, load, kind: str):
    """``load()`` once per session, content and ``kind``; None (message shown) when it raises."""
    key = ("parsed", kind, digest_)
    cache = st.session_state.setdefault("_uploads", {})
    if key not in cache:
        with guard(f"Reading {name}", where=st.sidebar) as ok:
            cache[key] = load()
        if not ok:
            return None
        while len(cache) > MAX_PARSED_UPLOADS:  # a long session must not keep every file it ever saw
            cache.pop(next(iter(cache)))
    return cache[key]


def parse(upload, loader, kind: str):
    """Parse one upload with ``loader(raw, name)`` once per session and content; None when it is bad."""
    raw = upload.getvalue()
    return parse_once(digest(raw), upload.name, lambda: loader(raw, upload.name), kind)


def checkpoints(sb, chosen: list[Checkpoint], template: Checkpoint | None) -> list[Checkpoint]:
    """The checkpoint uploader; returns ``chosen`` plus the good uploads (duplicates counted once).

    Args:
        sb: the sidebar.
        chosen: the checkpoints already chosen (the zoo's).
        template: a checkpoint whose metadata pre-fills the form of plain state dicts (the zoo's own).
    """
    uploads = sb.file_uploader(
        "Add checkpoints (.safetensors, smp folder .zip, or state dict .pt)",
        type=CHECKPOINT_TYPES,
        accept_multiple_files=True,
        key="checkpoint_upload",
    )
    found = list(chosen)
    for upload in uploads or []:
        meta = _state_dict_meta(sb, upload.name, template) if upload.name.endswith((".pt", ".pth")) else None
        checkpoint = parse(
            upload,
            lambda raw, name, meta=meta: _load(raw, name, meta),
            f"checkpoint-{json.dumps(meta, sort_keys=True)}",
        )
        if checkpoint is None:
            continue
        twin = next((c for c in found if c.sha256 == checkpoint.sha256), None)
        if twin is not None:
            sb.caption(f"{upload.name} has the same weights as **{twin.name}**: counted once.")
            continue
        names = {c.name for c in found}
        if checkpoint.name in names:
            n = 2
            while f"{checkpoint.name} ({n})" in names:
                n += 1
            sb.caption(
                f"Another checkpoint is already called {checkpoint.name}: this one is shown as "
                f"**{checkpoint.name} ({n})**."
            )
            checkpoint = replace(checkpoint, name=f"{checkpoint.name} ({n})")
        m = checkpoint.meta
        sb.caption(
            f"**{checkpoint.name}** added: {m.arch} / {m.encoder}, strategy {m.strategy or 'not recorded'}, "
            f"offsets {', '.join(map(offset_label, m.offsets))}."
        )
        found.append(checkpoint)
    return found


def _load(raw: bytes, name: str, meta: dict | None) -> Checkpoint:
    """Messages name the uploaded file; the checkpoint is shown under the file's stem."""
    return replace(load_checkpoint(raw, name=name, meta=meta), name=name.rsplit(".", 1)[0])


def _state_dict_meta(sb, name: str, template: Checkpoint | None) -> dict:
    """A plain state dict carries no metadata: the user describes the network (pre-filled with the zoo's)."""
    base = template.meta if template is not None else None
    archs, strategies, norms = list(ARCHS), list(STRATEGIES), list(NORMALISATIONS)

    def index(options: list[str], value: str | None) -> int:
        return options.index(value) if value in options else 0

    with sb.expander(f"Metadata for {name}", expanded=True):
        arch = st.selectbox("Architecture", archs, index(archs, base and base.arch), key=f"arch-{name}")
        encoder = st.text_input("Encoder", base.encoder if base else "mobilenet_v2", key=f"encoder-{name}")
        classes = st.number_input("Classes", 1, 64, base.classes if base else 1, key=f"classes-{name}")
        kwargs_text = st.text_input(
            "Architecture arguments (JSON)",
            json.dumps(base.arch_kwargs if base else {}),
            key=f"kwargs-{name}",
            help='e.g. {"decoder_channels": [128, 64, 32, 16, 8]} for the zoo\'s U-Net',
        )
        strategy = st.selectbox(
            "Initialisation strategy",
            strategies,
            index(strategies, base and base.strategy),
            key=f"strategy-{name}",
            help="How the first convolution was initialised "
            "(docs/definitions.md); it sets the checkpoint's colour in every figure.",
        )
        offsets = st.text_input(
            "Offsets (input channel i = slice z + offset i)",
            ",".join(str(o) for o in (base.offsets if base else (-1, 0, 1))),
            key=f"offsets-{name}",
        )
        normalisation = st.selectbox(
            "Normalisation", norms, index(norms, base and base.normalisation), key=f"norm-{name}"
        )
        axis = st.selectbox("Trained on", list(AXES), index(list(AXES), base and base.axis), key=f"axis-{name}")
    try:
        arch_kwargs = json.loads(kwargs_text or "{}")
    except json.JSONDecodeError:
        sb.error(
            f"Architecture arguments for {name}: not valid JSON; expected e.g. "
            '{"decoder_channels": [128, 64, 32, 16, 8]}'
        )
        arch_kwargs = {}
    return {
        "arch": arch,
        "encoder": encoder,
        "classes": int(classes),
        "arch_kwargs": arch_kwargs,
        "strategy": strategy,
        "normalisation": normalisation,
        "axis": axis,
        "offsets": [int(o) for o in offsets.split(",") if o.strip().lstrip("-").isdigit()],
    }
