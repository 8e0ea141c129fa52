"""NIfTI-1/2 (``.nii``, ``.nii.gz``) and FreeSurfer MGH/MGZ through nibabel.

The header is parsed from the first bytes; the declared shape is checked against the voxel limit and a
gzip stream is inflated only up to the end of the declared voxel data, so a small file that declares a huge
image (a decompression bomb) is refused before anything large is allocated.
"""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
from nibabel.freesurfer.mghformat import MGHHeader

from ...config import Limits
from ...errors import InputError
from .base import Raw, Reader, ReadParams, check_voxels
from .source import GZIP_MAGIC, Source

__all__ = ["read_nifti", "read_mgh", "NIFTI", "MGH"]


_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")
_HEADER_BYTES = 540  # NIfTI-2 header; NIfTI-1 needs 348, MGH 284
_MGH_FOOTER_SLACK = 64 * 1024  # MGH keeps optional tags after the voxels


def _header_bytes(src: Source) -> bytes:
    return src.gunzip(_HEADER_BYTES) if src.head[:2] == GZIP_MAGIC else src.head[:_HEADER_BYTES]


def _nifti_class(head: bytes) -> type[nib.Nifti1Image] | None:
    if len(head) >= 348 and head[344:348] in _NIFTI1_MAGICS:
        return nib.Nifti1Image
    if len(head) >= 540 and head[4:8] in _NIFTI2_MAGICS:
        return nib.Nifti2Image
    return None


def _payload(src: Source, end: int) -> bytes:
    """The file's bytes up to ``end`` (the declared end of the voxels), inflating no further."""
    return src.gunzip(end) if src.head[:2] == GZIP_MAGIC else src.data


def _check_complete(payload: bytes, offset: int, shape: tuple[int, ...], dtype: np.dtype, label: str) -> None:
    dims = tuple(int(n) for n in shape)
    expected = int(np.prod(dims, dtype=np.float64)) * dtype.itemsize
    available = max(0, len(payload) - offset)
    if expected > available:
        raise InputError(
            label,
            f"file is truncated: header promises {expected} bytes of voxels for shape "
            f"{dims}, the file holds {available}",
            "a complete file",
        )


def _scaled(proxy) -> np.ndarray:
    """Voxels with ``scl_slope``/``scl_inter`` applied in float64: nibabel scales float32 data in float32,
    where a large slope overflows to Inf before any check could see the real value."""
    slope, inter = float(proxy.slope), float(proxy.inter)
    raw = np.asanyarray(proxy.get_unscaled())
    if (slope, inter) == (1.0, 0.0):
        return raw
    return raw.astype(np.float64) * slope + inter


def read_nifti(src: Source, params: ReadParams, limits: Limits) -> Raw:
    """Header first (cheap), then the voxel limit, then the bytes up to the declared end of the data."""
    head = _header_bytes(src)
    cls = _nifti_class(head)
    if cls is None:
        raise InputError(src.label, "no NIfTI magic", "a NIfTI-1 or NIfTI-2 file")
    try:
        header = cls.header_class.from_fileobj(io.BytesIO(head))
    except Exception as exc:  # nibabel raises several types for a broken header
        raise InputError(src.label, f"unreadable NIfTI header ({exc})", "a valid NIfTI-1 or NIfTI-2 file") from exc
    shape, dtype = header.get_data_shape(), header.get_data_dtype()
    check_voxels(shape, src.label, limits, itemsize=dtype.itemsize)
    offset = int(header.get_data_offset())
    payload = _payload(src, offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize)
    _check_complete(payload, offset, shape, dtype, src.label)
    try:
        img = cls.from_bytes(payload)
        return Raw(_scaled(img.dataobj), img.affine, "nifti2" if cls is nib.Nifti2Image else "nifti1")
    except Exception as exc:
        raise InputError(src.label, f"unreadable NIfTI data ({exc})", "a valid NIfTI-1 or NIfTI-2 file") from exc


def read_mgh(src: Source, params: ReadParams, limits: Limits) -> Raw:
    """FreeSurfer MGH/MGZ: big-endian header of 284 bytes, voxels, then optional tags."""
    head = _header_bytes(src)
    try:
        header = MGHHeader(head[:284])
        shape, dtype = header.get_data_shape(), header.get_data_dtype()
    except Exception as exc:  # nibabel raises several types for a broken header
        raise InputError(src.label, f"unreadable MGH header ({exc})", "a valid FreeSurfer .mgh/.mgz file") from exc
    check_voxels(shape, src.label, limits, itemsize=dtype.itemsize)
    end = 284 + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    payload = _payload(src, end + _MGH_FOOTER_SLACK)
    _check_complete(payload, 284, shape, dtype, src.label)
    try:
        img = nib.MGHImage.from_bytes(payload)
        return Raw(np.asanyarray(img.dataobj), img.affine, "mgh")
    except Exception as exc:
        raise InputError(src.label, f"unreadable MGH data ({exc})", "a valid FreeSurfer .mgh/.mgz file") from exc


def _is_nifti(src: Source) -> bool:
    return bool(src.head) and _nifti_class(_header_bytes(src)) is not None


def _is_mgh(src: Source) -> bool:
    return src.suffix in (".mgh", ".mgz") and bool(src.head)


NIFTI = Reader("nifti", "NIfTI-1/2 (.nii, .nii.gz)", (".nii", ".nii.gz"), _is_nifti, read_nifti)
MGH = Reader("mgh", "FreeSurfer MGH/MGZ (.mgh, .mgz)", (".mgh", ".mgz"), _is_mgh, read_mgh)
