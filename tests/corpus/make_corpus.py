"""Generate the corpus of hostile and broken inputs used by ``tests/test_corpus.py``.

Nothing here is committed as a blob: every file is made from the sample data and a few lines of code, so
the corpus is the same in every fresh clone. Run ``python tests/corpus/make_corpus.py DIR`` to look at it;
the tests call :func:`make_corpus` with a pytest temporary directory.

Each :class:`Item` is one file, the role it plays (``volume``, ``mask`` or ``checkpoint``), the message
it must be rejected with (a regular expression; None: a valid but extreme file that must be analysed), the
environment it is tried under (tighter limits) and, for plain state dicts, the metadata a user supplies.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

import explorer  # noqa: F401  (the torchvision shim precedes smp)
from explorer.config import SAMPLE_DIR
from explorer.models.build import build_model
from explorer.models.checkpoints import CheckpointMeta, save_checkpoint

try:
    from corpus.format_cases import FORMAT_CASES
    from corpus.round3_models import ROUND3_MODEL_CASES
    from corpus.round3_readers import ROUND3_READER_CASES
except ModuleNotFoundError:  # run as a script: this folder is on sys.path
    from format_cases import FORMAT_CASES
    from round3_models import ROUND3_MODEL_CASES
    from round3_readers import ROUND3_READER_CASES

SAMPLE_VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"
SAMPLE_MASK = SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz"
#: A small decoder keeps the generated checkpoints (and every run on them) small and fast.
DECODER = [16, 16, 8, 8, 8]
#: The file a malicious pickle would create if it were ever unpickled with code execution.
MARKER = "PWNED"
#: Metadata a user would type for the plain state dicts (``.pt``) of the corpus.
PT_META = {
    "arch": "Unet",
    "encoder": "mobilenet_v2",
    "strategy": "imagenet",
    "offsets": [-1, 0, 1],
    "arch_kwargs": {"decoder_channels": DECODER},
}


@dataclass(frozen=True)
class Item:
    """One corpus file.

    Attributes:
        name: file name (its extension is part of the test: right extension, wrong content).
        role: ``volume``, ``mask`` (on the sample volume's grid) or ``checkpoint``.
        message: regular expression the error must match; None for a valid, extreme file.
        env: environment variables set while it is tried (limits).
        meta: metadata supplied with a plain state dict.
        at_run: refused when a run starts (memory, time and slice limits), not when the file is read; so
            ``explorer train`` (which reads the sample mask with it) is not tried, and the app must press Analyse.
    """

    name: str
    role: str
    message: str | None
    env: dict[str, str] = field(default_factory=dict)
    meta: dict | None = None
    at_run: bool = False


@dataclass(frozen=True)
class Corpus:
    """The generated files: bad ``items`` and the good inputs they are combined with."""

    directory: Path
    items: dict[str, Item]
    volume: Path
    mask: Path
    checkpoint: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def marker(self) -> Path:
        return self.directory / MARKER


class _RunsCode:
    """Unpickling this creates a file: the classic pickle code-execution attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _nifti(data: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    return gzip.compress(nib.Nifti1Image(data, np.eye(4) if affine is None else affine, dtype=data.dtype).to_bytes())


def _huge_header() -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.float32)
    return header.binaryblock + b"\x00" * 4 + b"\x00" * 4096


def _crop() -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(SAMPLE_VOLUME)
    small = img.slicer[14:62, 20:76, 36:44]
    return np.asanyarray(small.dataobj).astype(np.float32), small.affine


def _safetensors(header: dict, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


@dataclass(frozen=True)
class _Context:
    """What the builders share: a crop of the sample, a small model's half-precision state and metadata."""

    directory: Path
    crop: np.ndarray
    affine: np.ndarray
    state: dict
    meta: dict

    def checkpoint(self, state: dict | None = None, text: str | None = None, **changes) -> bytes:
        """The small model's ``.safetensors`` with ``changes`` to its metadata (or the metadata ``text``)."""
        from safetensors.torch import save

        return save(
            self.state if state is None else state,
            metadata={"explorer": json.dumps({**self.meta, **changes}) if text is None else text},
        )


def _int64_extremes(c: _Context) -> bytes:
    extreme = np.round(c.crop * 1000).astype(np.int64)  # the sample's intensities lie in [0, 1]
    extreme[0, 0, 0], extreme[1, 1, 1] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    return _nifti(extreme, c.affine)


def _wrong_shapes(c: _Context) -> bytes:
    wrong = dict(c.state)
    wrong["encoder.features.0.0.weight"] = torch.zeros(32, 5, 3, 3, dtype=torch.float16)
    return c.checkpoint(wrong)


def _runs_code(c: _Context) -> bytes:
    return pickle.dumps(
        {"encoder.features.0.0.weight": torch.zeros(1), "evil": _RunsCode(c.directory / MARKER)}, protocol=2
    )


def _mask_other_affine(c: _Context) -> bytes:
    img = nib.load(SAMPLE_VOLUME)
    shifted = img.affine.copy()
    shifted[0, 3] += 10
    return _nifti(np.ones(img.shape, np.uint8), shifted)


_NOISE = (48, 48, 48)
_CORRUPT_HEADER = _safetensors({"a": {"dtype": "F32"}})[:-3] + b"\x00\x00\x00"
_BAD_OFFSETS = _safetensors({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}})

#: name -> (role, builder, message regex or None, environment)
_TABLE: dict[str, tuple[str, Callable[[_Context], bytes], str | None, dict[str, str]]] = {
    "empty.nii.gz": ("volume", lambda c: b"", "file is empty", {}),
    "truncated.nii.gz": ("volume", lambda c: SAMPLE_VOLUME.read_bytes()[:20_000], "gzip data is truncated", {}),
    "wrong_magic.nii.gz": ("volume", lambda c: b"\x89PNG\r\n\x1a\n" + bytes(2000), "not a NIfTI or TIFF file", {}),
    "wrong_magic.tif": ("volume", lambda c: b"GIF89a" + bytes(2000), "not a NIfTI or TIFF file", {}),
    "enormous_header.nii": ("volume", lambda c: _huge_header(), r"64,000,000,000 voxels .* over the limit", {}),
    "image_2d.nii.gz": ("volume", lambda c: _nifti(np.ones((8, 8), np.float32)), "2D image", {}),
    "image_4d.nii.gz": ("volume", lambda c: _nifti(np.stack([c.crop, c.crop], -1)), "4D image with 2 volumes", {}),
    "image_5d.nii.gz": ("volume", lambda c: _nifti(np.ones((4, 4, 4, 2, 2), np.float32)), "5D image", {}),
    "zero_axis.nii.gz": ("volume", lambda c: _nifti(np.ones((4, 0, 4), np.float32)), "zero-length axis", {}),
    "all_nan.nii.gz": ("volume", lambda c: _nifti(np.full((8, 8, 8), np.nan, np.float32)), "every voxel is NaN", {}),
    "constant.nii.gz": (
        "volume",
        lambda c: _nifti(np.full((8, 8, 8), 7, np.float32)),
        "every voxel has the value 7",
        {},
    ),
    "complex.nii.gz": ("volume", lambda c: _nifti(np.ones((8, 8, 8), np.complex64)), "complex-valued", {}),
    "over_size_limit.nii.gz": (
        "volume",
        lambda c: _nifti(np.random.default_rng(0).normal(size=_NOISE).astype(np.float32)),
        r"over the 0 MB limit.*EXPLORER_MAX_UPLOAD_MB",
        {"EXPLORER_MAX_UPLOAD_MB": "0.1"},
    ),
    "over_voxel_limit.nii.gz": (
        "volume",
        lambda c: _nifti(c.crop, c.affine),
        r"21,504 voxels .* over the limit of 1,000.*EXPLORER_MAX_VOXELS",
        {"EXPLORER_MAX_VOXELS": "1000"},
    ),
    "over_memory_limit.nii.gz": (
        "volume",
        lambda c: _nifti(c.crop, c.affine),
        r"estimated memory .* over the limit of 1 MB.*EXPLORER_MAX_RUN_MEMORY_MB",
        {"EXPLORER_MAX_RUN_MEMORY_MB": "1"},
    ),
    "int64_extremes.nii.gz": ("volume", _int64_extremes, None, {}),
    "mask_other_shape.nii.gz": (
        "mask",
        lambda c: _nifti(np.ones((10, 10, 10), np.uint8), nib.load(SAMPLE_VOLUME).affine),
        r"mask has shape \(10, 10, 10\) but the volume has \(77, 94, 80\)",
        {},
    ),
    "mask_other_affine.nii.gz": ("mask", _mask_other_affine, "mask affine differs", {}),
    "mask_empty.nii.gz": ("mask", lambda c: b"", "file is empty", {}),
    "ckpt_empty.safetensors": ("checkpoint", lambda c: b"", "file is empty", {}),
    "ckpt_corrupt_header.safetensors": ("checkpoint", lambda c: _CORRUPT_HEADER, "corrupt safetensors file", {}),
    "ckpt_bad_offsets.safetensors": ("checkpoint", lambda c: _BAD_OFFSETS, "corrupt safetensors file", {}),
    "ckpt_wrong_magic.safetensors": (
        "checkpoint",
        lambda c: b"\x89PNG\r\n\x1a\n" + bytes(200),
        "refused: not a plain tensor",
        {},
    ),
    "ckpt_runs_code.pt": ("checkpoint", _runs_code, "refused: not a plain tensor state dict", {}),
    "ckpt_wrong_shapes.safetensors": (
        "checkpoint",
        _wrong_shapes,
        r"state dict does not fit .*shape mismatches: encoder.features.0.0.weight",
        {},
    ),
    "ckpt_unknown_encoder.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(encoder="resnet9000"),
        "unknown encoder 'resnet9000'",
        {},
    ),
    "ckpt_unknown_strategy.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(strategy="imagenet-magic"),
        "unknown strategy 'imagenet-magic'",
        {},
    ),
    "ckpt_unknown_arch.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(arch="Transformer9000"),
        "unknown architecture 'Transformer9000'",
        {},
    ),
    "ckpt_bad_metadata_json.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(text="{not json"),
        "metadata 'explorer' is not valid JSON",
        {},
    ),
    "ckpt_over_size_limit.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(),
        r"over the 1 MB limit.*EXPLORER_MAX_UPLOAD_MB",
        {"EXPLORER_MAX_UPLOAD_MB": "1.2"},
    ),  # the sample inflates to 1.1 MB
    **FORMAT_CASES,
    **ROUND3_READER_CASES,
    **ROUND3_MODEL_CASES,
}


# ------------------------------------------------------------------------------------------------------------
# Hardening, second round (issue 16): checkpoint bombs, metadata that would size allocations or reach a hub or
# a folder, and volumes no 2D+ run makes sense on. A separate block so that reader cases merge cleanly above.

_SMP_CONFIG = {
    "_model_class": "Unet",
    "encoder_name": "mobilenet_v2",
    "encoder_weights": None,
    "in_channels": 3,
    "classes": 1,
    "decoder_channels": DECODER,
}
#: Inflated size of the zip bomb's member: over the default 512 MB upload limit, 600 kB compressed.
_BOMB_MB = 600


def _smp_zip(c: _Context, **config) -> bytes:
    """An smp ``save_pretrained`` folder as a zip, with ``config`` changes."""
    from safetensors.torch import save

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ckpt/config.json", json.dumps({**_SMP_CONFIG, **config}))
        zf.writestr("ckpt/model.safetensors", save(c.state))
    return buffer.getvalue()


def _zip_bomb(c: _Context) -> bytes:
    """A zip whose ``model.safetensors`` inflates to :data:`_BOMB_MB` MB of zeros (written in chunks; at the
    fastest level, 2.7 MB: level 9 made it 600 kB in 3 s more)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("ckpt/config.json", json.dumps(_SMP_CONFIG))
        with zf.open("ckpt/model.safetensors", "w", force_zip64=True) as member:
            chunk = bytes(1024**2)
            for _ in range(_BOMB_MB):
                member.write(chunk)
    return buffer.getvalue()


def _noise(shape: tuple[int, ...]) -> bytes:
    return _nifti(np.random.default_rng(0).normal(size=shape).astype(np.float32))


_HUGE_DECLARED = _safetensors({"w": {"dtype": "F32", "shape": [65536, 65536], "data_offsets": [0, 2**34]}}, bytes(16))

_TABLE.update(
    {
        "ckpt_zip_bomb.zip": (
            "checkpoint",
            _zip_bomb,
            rf"model.safetensors: zip member \(uncompressed\) is {_BOMB_MB}.0 MB, over the 512 MB",
            {},
        ),
        "ckpt_in_channels_1e8.zip": (
            "checkpoint",
            lambda c: _smp_zip(c, in_channels=10**8),
            r"'in_channels' is 100,000,000; expected an integer in 1..33",
            {},
        ),
        "ckpt_classes_1e9.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(classes=10**9),
            r"'classes' is 1,000,000,000; expected an integer in 1..512",
            {},
        ),
        "ckpt_classes_string.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(classes="3"),
            r"'classes' is '3'; expected an integer",
            {},
        ),
        "ckpt_decoder_20000.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(arch_kwargs={"decoder_channels": [20000, 16, 8, 8, 8]}),
            r"'arch_kwargs.decoder_channels.0' is 20,000",
            {},
        ),
        "ckpt_deep_json.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(text="[" * 100_000 + "]" * 100_000),
            "metadata 'explorer' is nested too deeply",
            {},
        ),
        "ckpt_meta_list.safetensors": ("checkpoint", lambda c: c.checkpoint(text="[1, 2]"), "metadata is a list", {}),
        "ckpt_tu_hf_hub.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(encoder="tu-hf-hub:timm/resnet18.a1_in1k"),
            "unknown encoder 'tu-hf-hub:timm/resnet18.a1_in1k'",
            {},
        ),
        "ckpt_tu_local_dir.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(encoder="tu-local-dir:/etc"),
            "unknown encoder 'tu-local-dir:/etc'",
            {},
        ),
        "ckpt_fractional_offsets.safetensors": (
            "checkpoint",
            lambda c: c.checkpoint(offsets=[-1.5, 0, 1.5]),
            r"offsets \[-1.5, 0, 1.5\] are not integers",
            {},
        ),
        "ckpt_declares_16gb_tensor.safetensors": (
            "checkpoint",
            lambda c: _HUGE_DECLARED,
            r"corrupt safetensors file \(tensor 'w' declares 4,294,967,296 F32",
            {},
        ),
        "slices_one_voxel.nii.gz": (
            "volume",
            lambda c: _noise((1, 1, 32767)),
            r"32,767 slices along the slicing axis, over the limit of 4,096",
            {},
        ),
        "slices_4x4.nii.gz": ("volume", lambda c: _noise((4, 4, 64)), r"slices of 4 × 4 pixels", {}),
        "over_time_limit.nii.gz": (
            "volume",
            lambda c: _nifti(c.crop, c.affine),
            r"estimated run time is .* over the limit of 0 minutes.*EXPLORER_MAX_RUN_MINUTES",
            {"EXPLORER_MAX_RUN_MINUTES": "0.0001"},
        ),
    }
)
#: Refused when a run starts (see :attr:`Item.at_run`).
_AT_RUN = {"slices_one_voxel.nii.gz", "slices_4x4.nii.gz", "over_time_limit.nii.gz"}


def items() -> dict[str, Item]:
    """Every corpus item by file name (no file is written: for test parametrisation)."""
    return {
        name: Item(
            name,
            role,
            message,
            env,
            PT_META if name.endswith(".pt") else None,
            at_run=name in _AT_RUN or "EXPLORER_MAX_RUN_MEMORY_MB" in env,
        )
        for name, (role, _, message, env) in _TABLE.items()
    }


def make_corpus(directory: str | Path) -> Corpus:
    """Write every corpus file (and the good inputs they are combined with) into ``directory``.

    Args:
        directory: where to write; created if missing.

    Returns:
        The :class:`Corpus`: the items by file name, and the paths of a good volume, mask and checkpoint.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    crop, affine = _crop()
    torch.manual_seed(0)
    good = build_model(decoder_channels=DECODER)
    meta = CheckpointMeta(
        arch="Unet",
        encoder="mobilenet_v2",
        classes=1,
        offsets=(-1, 0, 1),
        strategy="random",
        arch_kwargs={"decoder_channels": DECODER},
    )
    checkpoint = save_checkpoint(good, meta, root / "good.safetensors")
    state = {k: v.detach().half().contiguous() for k, v in good.state_dict().items()}
    context = _Context(root, crop, affine, state, meta.to_dict())
    for name, (_, build, _, _) in _TABLE.items():
        (root / name).write_bytes(build(context))
    return Corpus(root, items(), SAMPLE_VOLUME, SAMPLE_MASK, checkpoint)


if __name__ == "__main__":
    out = make_corpus(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "generated")
    for item in out.items.values():  # noqa: T201
        print(f"{item.role:10s} {item.name:40s} {item.message or '(valid: must be analysed)'}")
