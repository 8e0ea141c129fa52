"""Checkpoints: one ``.safetensors`` file with JSON metadata; also smp folders/zips and plain state dicts.

Accepted sources (nothing is ever unpickled with code execution):
- ``.safetensors`` written by :func:`save_checkpoint` (metadata key ``explorer``, a JSON string);
- an smp ``save_pretrained`` folder (``config.json`` + ``model.safetensors``), or a ``.zip`` of one;
- a plain state dict (``.pt``/``.pth``), read with ``torch.load(weights_only=True)``; the caller supplies
  the metadata the file lacks (``meta=``), channels and classes are read off the tensors.
Float16 storage is restored to float32 on load. Every failure is an :class:`InputError` naming the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .. import __version__
from ..attribution.windows import MAX_OFFSET, validate_offsets
from ..config import MODELS_DIR, Limits, require_dir
from ..errors import InputError
from ..io.files import sha256_bytes, size_error, unwrap_state_dict
from ..io.normalise import NORMALISATIONS
from ..io.volume import AXES
from .build import blank_model, check_arch_kwargs, check_encoder, first_conv_key, meta_model, meta_probe, resolve_arch
from .files import MAX_HEADER, declared_shapes, folder_reader, safetensors_header, zip_reader
from .hub import is_hub_id, resolve_hub_checkpoint
from .metaschema import integer, parse_json, validate_fields
from .strategies import STRATEGIES

__all__ = [
    "META_KEY",
    "UNKNOWN_STRATEGY",
    "CheckpointMeta",
    "Checkpoint",
    "save_checkpoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "list_zoo",
    "list_seeds",
]


META_KEY = "explorer"
#: Strategy recorded when a file does not say (plain state dicts without user metadata).
UNKNOWN_STRATEGY = "unknown"
#: Names a metadata field must take (a checkpoint naming anything else is rejected when loaded).
_ALLOWED = {"strategy": [*STRATEGIES, UNKNOWN_STRATEGY], "normalisation": list(NORMALISATIONS), "axis": list(AXES)}


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything needed to rebuild and interpret a checkpoint (stored as JSON in the file)."""

    arch: str
    encoder: str
    classes: int
    offsets: tuple[int, ...]
    strategy: str
    normalisation: str = "zscore"
    axis: str = "axial"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    @property
    def architecture(self) -> tuple[str, str, int, int, str]:
        """``(arch, encoder, in_channels, classes, arch_kwargs as sorted JSON)``: the arguments, and cache key, of
        :mod:`explorer.models.build`'s per-architecture functions (``meta_model``, ``blank_model``, ``meta_probe``,
        ``first_conv_key``)."""
        return self.arch, self.encoder, len(self.offsets), self.classes, json.dumps(self.arch_kwargs, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (offsets as a list)."""
        out = asdict(self)
        out["offsets"] = list(self.offsets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "checkpoint") -> CheckpointMeta:
        """Validate and build from a dict; unknown keys are ignored.

        Raises:
            InputError: a required field is missing or has the wrong type, or ``arch_kwargs`` sets an argument
                outside :func:`explorer.models.build.arch_arguments` (names ``source``).
        """
        data = validate_fields(data, source=source)  # types and bounds, before anything is built from it
        missing = [k for k in ("arch", "encoder", "classes", "offsets", "strategy") if k not in data]
        if missing:
            raise InputError(
                source,
                f"metadata lacks {', '.join(missing)}",
                "arch, encoder, classes, offsets and strategy (supply them with meta=...)",
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["offsets"] = validate_offsets(values["offsets"], source=source)
        try:
            values["arch"] = resolve_arch(values["arch"])
            check_encoder(values["encoder"])
            check_arch_kwargs(values["arch"], values.get("arch_kwargs", {}), source=source, where="field 'arch_kwargs'")
        except InputError as exc:  # name the file: "unknown encoder" alone does not say which upload is wrong
            raise InputError(source, "metadata: " + exc.problem, exc.expected) from exc
        for key, allowed in _ALLOWED.items():
            if key in values and values[key] not in allowed:
                raise InputError(
                    source, f"metadata names an unknown {key} {values[key]!r}", "one of: " + ", ".join(sorted(allowed))
                )
        return cls(**values)


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint: display ``name``, content ``sha256`` (cache key), ``meta`` and float32 weights."""

    name: str
    sha256: str
    meta: CheckpointMeta
    state_dict: dict[str, torch.Tensor]

    def first_conv_weight(self) -> torch.Tensor:
        """The first convolution's weight ``(out, C, kh, kw)``, read from the state dict (no model is built)."""
        return self.state_dict[first_conv_key(*self.meta.architecture)]

    def build_model(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """A fresh module with these weights, in ``eval()`` mode, on ``device``.

        Raises:
            InputError: the weights do not fit the architecture the metadata describes.
        """
        blank = blank_model(*self.meta.architecture)
        _check_shapes(
            {k: tuple(v.shape) for k, v in self.state_dict.items()},
            {k: tuple(v.shape) for k, v in blank.state_dict().items()},
            self.name,
            self.meta,
        )
        model = copy.deepcopy(blank)
        model.load_state_dict(self.state_dict, strict=True)
        return model.to(device).eval()


def _check_shapes(
    found: dict[str, tuple[int, ...]], own: dict[str, tuple[int, ...]], name: str, meta: CheckpointMeta
) -> None:
    """Refuse a state dict whose keys or shapes differ from the architecture's (before any tensor is read)."""
    missing = [k for k in own if k not in found]
    unexpected = [k for k in found if k not in own]
    shapes = [f"{k} {found[k]} vs {own[k]}" for k in own if k in found and found[k] != own[k]]
    if missing or unexpected or shapes:
        parts = [
            f"{len(missing)} missing keys (e.g. {', '.join(missing[:2])})" if missing else "",
            f"{len(unexpected)} unexpected keys (e.g. {', '.join(k[:60] for k in unexpected[:2])})"
            if unexpected
            else "",
            f"shape mismatches: {'; '.join(shapes[:2])}" if shapes else "",
        ]
        raise InputError(
            name,
            "state dict does not fit " + f"{meta.arch}/{meta.encoder} with {len(meta.offsets)} "
            f"input channels and {meta.classes} classes: " + "; ".join(p for p in parts if p),
            "weights of that architecture, or the right arch/encoder/offsets/arch_kwargs in meta",
        )


def save_checkpoint(model: torch.nn.Module, meta: CheckpointMeta, path: str | Path, *, half: bool = True) -> Path:
    """Write ``model``'s weights and ``meta`` to one ``.safetensors`` file, atomically (temp name, rename).

    Args:
        model: the trained model.
        meta: its metadata.
        path: destination, ending in ``.safetensors``.
        half: store floating-point tensors as float16 (restored to float32 on load).

    Raises:
        InputError: the path does not end in ``.safetensors``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(path, f"checkpoint name ends in {path.suffix or 'nothing'!r}", "a .safetensors file")
    blob = checkpoint_bytes(model, meta, half=half)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def checkpoint_bytes(model: torch.nn.Module, meta: CheckpointMeta, *, half: bool = True) -> bytes:
    """The ``.safetensors`` bytes :func:`save_checkpoint` writes: ``model``'s weights (float16 when ``half``) and
    ``meta`` as JSON under the metadata key ``explorer``."""
    state = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    return st_save(state, metadata={META_KEY: json.dumps(meta.to_dict(), sort_keys=True)})


def load_checkpoint(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> Checkpoint:
    """Load a checkpoint from a path (file or smp folder) or from an upload's bytes.

    Args:
        source: ``.safetensors`` / smp folder / ``.zip`` of one / ``.pt`` state dict, or the bytes of a file.
        name: display name (default: the file stem, or ``upload``).
        meta: metadata fields the file lacks (plain state dicts, smp folders) or that override smp's config.
        limits: the size limit (default: :meth:`Limits.from_env`, i.e. ``EXPLORER_MAX_UPLOAD_MB``).

    Raises:
        InputError: missing, too large or unreadable file, a pickle needing code execution, missing metadata,
            metadata naming an unknown architecture, encoder, strategy, normalisation or axis, or weights that
            do not fit the architecture the metadata describes.
    """
    limits = limits or Limits.from_env()
    if is_hub_id(source):
        folder = resolve_hub_checkpoint(str(source))
        return _from_smp(folder_reader(folder, limits.max_bytes, str(source)), name or str(source), meta, str(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, label = bytes(source), name or "upload"
    else:
        path = Path(source)
        label = name or (path.name if path.is_dir() else path.stem.removesuffix(".safetensors"))
        if path.is_dir():
            return _from_smp(folder_reader(path, limits.max_bytes, str(path)), label, meta, str(path))
        if not path.is_file():
            raise InputError(path, "no such file or folder", "a .safetensors checkpoint, an smp folder, .zip or .pt")
        _check_size(path.stat().st_size, str(path), limits)
        raw = path.read_bytes()
    shown = str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else label
    _check_size(len(raw), shown, limits)
    if not raw:
        raise InputError(shown, "file is empty", "a .safetensors checkpoint")
    if raw[:2] == b"PK" and zipfile.is_zipfile(io.BytesIO(raw)):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            if any(Path(n).name == "config.json" for n in zf.namelist()):
                return _from_smp(zip_reader(zf, limits.max_bytes, shown), label, meta, shown)
    if _looks_like_safetensors(raw):
        header = safetensors_header(raw, shown)  # shapes and byte ranges checked before any tensor is read
        stored = _stored_meta(header, shown)
        return _finish(
            label,
            lambda state: sha256_bytes(raw),
            declared_shapes(header),
            lambda: _read_safetensors(raw, shown),
            stored,
            meta,
            shown,
        )
    state = _read_torch(raw, shown)
    digest = sha256_bytes(raw + json.dumps(meta or {}, sort_keys=True).encode())
    return _finish(
        label, lambda _: digest, {k: tuple(v.shape) for k, v in state.items()}, lambda: state, {}, meta, shown
    )


def list_zoo(directory: str | Path = MODELS_DIR) -> list[Path]:
    """The shipped ``.safetensors`` checkpoints in ``directory``, sorted by name.

    Raises:
        InputError: ``directory`` does not exist (:func:`explorer.config.require_dir`).
    """
    return sorted(require_dir(directory, "EXPLORER_MODELS_DIR").glob("*.safetensors"))


def list_seeds(directory: str | Path = MODELS_DIR / "seeds") -> list[Path]:
    """The other seeds of the zoo that ``models/train_zoo.py`` reproduced (not shipped), sorted; may be empty."""
    return list_zoo(directory) if Path(directory).is_dir() else []


# --------------------------------------------------------------------------------------------- helpers


def _check_size(size: int, label: str, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise size_error(label, size, limits.max_bytes)


def _one_line(text: str, limit: int = 160) -> str:
    """An exception's text as one short line (no terminal colour codes, no line breaks)."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())[:limit]


def _looks_like_safetensors(raw: bytes) -> bool:
    if len(raw) < 10:
        return False
    size = int.from_bytes(raw[:8], "little")
    return 0 < size <= MAX_HEADER and raw[8:9] == b"{"  # a header longer than the file: corrupt safetensors


def _stored_meta(header: dict[str, Any], label: str) -> dict[str, Any]:
    text = header.get("__metadata__", {}).get(META_KEY)
    stored = parse_json(text, source=label, what=f"metadata {META_KEY!r}") if text else {}
    if not isinstance(stored, dict):
        raise InputError(label, f"metadata is a {type(stored).__name__}", "a JSON object")
    return stored


def _read_safetensors(raw: bytes, label: str) -> dict[str, torch.Tensor]:
    try:
        return st_load(raw)
    except (SafetensorError, ValueError) as exc:
        raise InputError(
            label, f"corrupt safetensors file ({_one_line(str(exc))})", "a complete .safetensors checkpoint"
        ) from exc


def _read_torch(raw: bytes, label: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for unsafe pickles; several types for garbage
        raise InputError(
            label,
            f"refused: not a plain tensor state dict ({type(exc).__name__}: {_one_line(str(exc))})",
            "a .safetensors checkpoint, or a state dict readable with torch.load(weights_only=True)",
        ) from exc
    state = unwrap_state_dict(state)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(label, f"holds a {type(state).__name__} that is not a dict of tensors", "a state dict")
    return {str(k): v for k, v in state.items()}


def _from_smp(
    read: Callable[[str], bytes | None], label: str, supplied: dict[str, Any] | None, shown: str
) -> Checkpoint:
    """An smp ``save_pretrained`` folder (or zip, or hub snapshot) read through ``read(file name)``."""
    config_raw = read("config.json")
    weights_raw = read("model.safetensors") if config_raw is not None else None
    if config_raw is None or weights_raw is None:
        raise InputError(
            shown,
            "smp folder lacks config.json or model.safetensors",
            "a folder written by smp's save_pretrained (or a .zip of one)",
        )
    config = parse_json(config_raw, source=shown, what="config.json")
    if not isinstance(config, dict):
        raise InputError(shown, f"config.json holds a {type(config).__name__}", "smp's config.json (an object)")
    header = safetensors_header(weights_raw, shown)
    skip = {"_model_class", "encoder_name", "encoder_weights", "in_channels", "classes"}
    arch_kwargs = {k: v for k, v in config.items() if k not in skip}
    try:
        arch = resolve_arch(config.get("_model_class"))
    except InputError:  # none or unknown: the merged metadata must name one, and is refused otherwise
        arch = None
    if arch is not None:
        check_arch_kwargs(arch, arch_kwargs, source=shown, where="config.json")
    found = {
        "arch": config.get("_model_class"),
        "encoder": config.get("encoder_name"),
        "classes": config.get("classes", 1),
        "arch_kwargs": arch_kwargs,
    }
    if "in_channels" in config:
        channels = integer(config["in_channels"], source=shown, field="in_channels", low=1, high=2 * MAX_OFFSET + 1)
        found["offsets"] = list(range(-(channels // 2), channels // 2 + 1))
    stored = {**{k: v for k, v in found.items() if v is not None}, **_stored_meta(header, shown)}
    return _finish(
        label,
        lambda state: _canonical_sha(state, stored),
        declared_shapes(header),
        lambda: _read_safetensors(weights_raw, shown),
        stored,
        supplied,
        shown,
    )


def _canonical_sha(state: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _finish(
    label: str,
    digest: Callable[[dict[str, torch.Tensor]], str],
    shapes: dict[str, tuple[int, ...]],
    read_state: Callable[[], dict[str, torch.Tensor]],
    stored: dict[str, Any],
    supplied: dict[str, Any] | None,
    shown: str,
) -> Checkpoint:
    """Validate the metadata, compare the declared shapes with the architecture's, and only then read tensors."""
    merged = {**_inferred(shapes), **stored, **(supplied or {})}
    merged.setdefault("strategy", UNKNOWN_STRATEGY)
    meta = CheckpointMeta.from_dict(merged, source=shown)
    arch = meta.architecture
    try:  # on the meta device: parameter shapes without allocating any memory
        expected = meta_model(*arch).state_dict()
    except InputError as exc:
        raise InputError(shown, "metadata: " + exc.problem, exc.expected) from exc
    _check_shapes(shapes, {k: tuple(v.shape) for k, v in expected.items()}, shown, meta)
    try:  # logits of the input's size, checked on the meta device too (an FPN's upsampling sizes its output)
        meta_probe(*arch)
    except InputError as exc:
        raise InputError(shown, "metadata: " + exc.problem, exc.expected) from exc
    state = read_state()
    state32 = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Checkpoint(name=label, sha256=digest(state), meta=meta, state_dict=state32)


def _inferred(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Input channels (as symmetric offsets) and classes read off a state dict's shapes, where recognisable."""
    out: dict[str, Any] = {}
    conv = next((v for k, v in shapes.items() if k.startswith("encoder.") and len(v) == 4), None)
    if conv is not None and conv[1] % 2 == 1:
        k = conv[1] // 2
        out["offsets"] = list(range(-k, k + 1))
    head = shapes.get("segmentation_head.0.weight")
    if head:
        out["classes"] = int(head[0])
    return out
