"""DICOM series through pydicom: a folder, a ``.zip`` of one, or several uploaded files.

Geometry (hand-written because pydicom has no series assembly, and SimpleITK's would hide which check
failed): slices are sorted by their position along the slice normal (ImageOrientationPatient's row × column
direction), not by file name or InstanceNumber; the affine is built from ImageOrientationPatient,
ImagePositionPatient and PixelSpacing in LPS and converted to RAS; each slice's rescale slope and intercept
(the modality LUT) are applied. Voxel ``(i, j, k)`` is column ``i``, row ``j`` of the ``k``-th slice.

Checks, cheapest first: zip members (no absolute or ``..`` names, declared sizes within the limit), one
series (else the series are listed), image storage with pixel data, one orientation, one size and spacing,
even spacing along the normal (a gap means missing slices), then the voxel limit on the declared shape
before any pixel data is decoded.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections import defaultdict
from pathlib import PurePosixPath

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian

from ...config import Limits
from ...errors import InputError
from ..files import size_error
from .base import LPS_TO_RAS, Raw, Reader, ReadParams, check_voxels, inflated_size
from .source import Source, folder_files

__all__ = ["dicom_choices", "read_dicom", "DICOM"]


_EXPECTED = "a DICOM image series (one file per slice)"
_DIRECTORY_SOP = "1.2.840.10008.1.3.10"  # DICOMDIR: an index, not an image


def _zip_members(src: Source, limits: Limits) -> list[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(src.data))
    except zipfile.BadZipFile as exc:
        raise InputError(src.label, f"unreadable zip ({exc})", "a .zip of one DICOM series") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        for info in infos:
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts or ":" in info.filename:
                raise InputError(
                    src.label,
                    f"zip member {info.filename!r} points outside the archive",
                    "a .zip whose members are plain relative names",
                )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_bytes:
            raise size_error(src.label, declared, limits.max_bytes, "unpacked zip")
        try:
            return [(i.filename, archive.read(i)) for i in infos]
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
            raise InputError(src.label, f"unreadable zip member ({exc})", "a .zip of one DICOM series") from exc


def _files(src: Source, limits: Limits) -> list[tuple[str, bytes]]:
    if src.files:
        return list(src.files)
    if src.is_dir:
        return [(str(p.relative_to(src.path)), p.read_bytes()) for p in folder_files(src.path)]  # type: ignore[arg-type]
    if src.head[:4] == b"PK\x03\x04":
        return _zip_members(src, limits)
    return [(src.label, src.data)]


def _inflated_size(raw: bytes, budget: int) -> int:
    """Bytes the deflated dataset of one Deflated Explicit VR file inflates to, counted up to just past
    ``budget``; 0 for any other transfer syntax.

    pydicom inflates a deflated dataset in one ``zlib.decompress`` call, without a bound (2 MB in, 4.6 GB
    out), so the size is measured here first. The file meta group is read with pydicom's own reader (private,
    but the one that knows the meta group's layout) to find where the deflated stream starts.
    """
    stream = io.BytesIO(raw)
    try:
        read_preamble(stream, False)
        meta = _read_file_meta_info(stream)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, RecursionError):
        return 0  # not DICOM, or nested too deeply: dcmread says so
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return 0
    try:
        return inflated_size(raw[stream.tell() :], budget, -zlib.MAX_WBITS)
    except zlib.error:
        return 0  # corrupt: dcmread fails on it and the file is skipped


def _where(name: str, label: str) -> str:
    """``name: `` for a file of a series, nothing for a single file (the label names it already)."""
    return "" if name == label else f"{name}: "


def _read(name: str, raw: bytes, label: str) -> pydicom.Dataset | None:
    """One file's dataset (pixel data not decoded), or None when it is not DICOM.

    Raises:
        InputError: sequences nested too deeply to parse.
    """
    try:
        return pydicom.dcmread(io.BytesIO(raw))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, zlib.error):
        return None  # not DICOM (a README, a thumbnail): skipped
    except RecursionError as exc:  # pydicom parses nested sequences recursively
        raise InputError(
            label,
            f"{_where(name, label)}sequences nested too deeply to read",
            "a DICOM file with sequences nested a few levels deep",
        ) from exc


def _datasets(src: Source, limits: Limits) -> dict[str, list[pydicom.Dataset]]:
    """Image datasets (pixel data not decoded) grouped by SeriesInstanceUID; deflated datasets may inflate to
    the upload limit in total, as a zip's members may."""
    series: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    non_image = []
    budget = limits.max_bytes
    for name, raw in _files(src, limits):
        inflated = _inflated_size(raw, budget)
        if inflated > budget:
            raise InputError(
                src.label,
                f"{_where(name, src.label)}deflated DICOM data inflate to more than {limits.max_bytes:,} bytes",
                "a series within the upload limit (EXPLORER_MAX_UPLOAD_MB) once inflated",
            )
        budget -= inflated
        ds = _read(name, raw, src.label)
        if ds is None:
            continue
        if "PixelData" not in ds or ds.get("SOPClassUID") == _DIRECTORY_SOP:
            non_image.append(f"{name} ({ds.get('SOPClassUID', 'no SOP class')})")
            continue
        series[str(ds.get("SeriesInstanceUID", "unknown"))].append(ds)
    if not series:
        found = f"non-image DICOM only: {', '.join(non_image[:3])}" if non_image else "no DICOM files"
        raise InputError(src.label, found, _EXPECTED)
    return series


def _describe(uid: str, slices: list[pydicom.Dataset]) -> str:
    first = slices[0]
    text = " ".join(str(first.get(k, "")) for k in ("Modality", "SeriesDescription")).strip()
    return f"{uid} ({text + ', ' if text else ''}{len(slices)} images)"


def dicom_choices(src: Source, limits: Limits) -> list[str]:
    """The SeriesInstanceUIDs of the source's image series (what ``series`` / ``--series`` can name)."""
    return sorted(_datasets(src, limits))


_GEOMETRY = "ImageOrientationPatient, ImagePositionPatient and PixelSpacing in every slice"


def _one(src: Source, values: list, what: str, atol: float) -> np.ndarray:
    first = np.asarray(values[0], dtype=np.float64)
    for value in values[1:]:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != first.shape or not np.allclose(value, first, atol=atol):
            raise InputError(
                src.label,
                f"{what} differ between slices ({first.tolist()} vs {value.tolist()})",
                "one series with a single " + what.rstrip("s"),
            )
    return first


def _vector(src: Source, ds: pydicom.Dataset, keyword: str, length: int) -> np.ndarray:
    """A slice's multi-valued attribute as ``length`` finite numbers."""
    value = ds.get(keyword)
    if value is None:
        raise InputError(src.label, f"a slice lacks {keyword}", _GEOMETRY)
    items = list(value) if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else [value]
    try:
        numbers = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(src.label, f"{keyword} {str(value)[:60]!r} is not numbers", _GEOMETRY) from exc
    if numbers.shape != (length,):
        raise InputError(src.label, f"{keyword} has {len(numbers)} values", f"{length} numbers in {keyword}")
    if not np.all(np.isfinite(numbers)):
        raise InputError(src.label, f"{keyword} {numbers.tolist()} is not finite", f"{length} finite numbers")
    return numbers


def _integer(src: Source, ds: pydicom.Dataset, keyword: str, default: int | None = None) -> int:
    """A slice's integer attribute (``default`` when it is absent or empty)."""
    try:
        value = ds.get(keyword)
        number = float(value) if value not in (None, "") else default
    except (TypeError, ValueError, OverflowError):  # pydicom converts IS/US values when they are read
        element = ds.get_item(keyword)
        value, number = getattr(element, "value", None), math.nan
    if number is None:
        raise InputError(src.label, f"a slice lacks {keyword}", f"{keyword} in every slice")
    if not math.isfinite(number) or not float(number).is_integer() or number < 0:
        raise InputError(
            src.label, f"{keyword} {str(value)[:40]!r} is not a non-negative integer", f"an integer {keyword}"
        )
    return int(number)


def _geometry(src: Source, slices: list[pydicom.Dataset]) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """Slices sorted along the normal and the LPS affine of voxel (column, row, slice)."""
    iop = _one(src, [_vector(src, ds, "ImageOrientationPatient", 6) for ds in slices], "orientations", 1e-4)
    spacing = _one(src, [_vector(src, ds, "PixelSpacing", 2) for ds in slices], "pixel spacings", 1e-4)
    positions = np.array([_vector(src, ds, "ImagePositionPatient", 3) for ds in slices])
    _one(src, [(_integer(src, ds, "Rows"), _integer(src, ds, "Columns")) for ds in slices], "sizes (rows, columns)", 0)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 1e-3:
        raise InputError(src.label, f"ImageOrientationPatient {iop.tolist()} is degenerate", "two orthogonal axes")
    order = np.argsort(positions @ normal)
    slices, positions = [slices[i] for i in order], positions[order]
    if len(slices) < 2:
        raise InputError(src.label, "a single slice is a 2D image", _EXPECTED)
    steps = np.diff(positions @ normal)
    if steps.min() < 1e-3 * max(1.0, abs(steps.max())):
        raise InputError(src.label, "two slices share one position", "one image per slice position")
    if steps.max() - steps.min() > 0.01 * np.median(steps) + 1e-3:
        raise InputError(
            src.label,
            f"uneven slice spacing ({steps.min():.4g} to {steps.max():.4g} mm: missing slices?)",
            "a complete series with even spacing",
        )
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]  # i runs along a row: column spacing
    affine[:3, 1] = col * spacing[0]  # j runs down a column: row spacing
    affine[:3, 2] = (positions[-1] - positions[0]) / (len(slices) - 1)
    affine[:3, 3] = positions[0]
    return slices, affine


def _check_frames(src: Source, slices: list[pydicom.Dataset], limits: Limits) -> None:
    """One greyscale frame per slice, and the declared stack within the limits (before any pixel is decoded)."""
    columns, rows = _integer(src, slices[0], "Columns"), _integer(src, slices[0], "Rows")
    if any(_integer(src, ds, "NumberOfFrames", 1) > 1 for ds in slices):
        raise InputError(src.label, "multi-frame DICOM images", "one single-frame image per slice")
    samples = sorted({_integer(src, ds, "SamplesPerPixel", 1) for ds in slices})
    if samples != [1]:
        raise InputError(
            src.label,
            f"SamplesPerPixel {', '.join(map(str, samples))} (colour images)",
            "greyscale slices (one sample per pixel)",
        )
    bits = max(_integer(src, ds, "BitsAllocated", 16) for ds in slices)
    check_voxels((columns, rows, len(slices)), src.label, limits, itemsize=max(1, -(-bits // 8)))


def read_dicom(src: Source, params: ReadParams, limits: Limits) -> Raw:
    series = _datasets(src, limits)
    if params.series is not None:
        if params.series not in series:
            raise InputError(
                src.label,
                f"no series {params.series!r} (series: {', '.join(sorted(series))})",
                "one of those UIDs, chosen with series= / --series UID",
            )
        uid = params.series
    elif len(series) == 1:
        uid = next(iter(series))
    else:
        listing = "; ".join(_describe(u, s) for u, s in sorted(series.items()))
        raise InputError(
            src.label, f"{len(series)} DICOM series: {listing}", "one series, or choose one with series= / --series UID"
        )
    slices, affine = _geometry(src, series[uid])
    _check_frames(src, slices, limits)
    stack = np.empty((int(slices[0].Columns), int(slices[0].Rows), len(slices)), dtype=np.float64)
    for k, ds in enumerate(slices):
        try:
            plane = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).T
        except Exception as exc:  # pydicom raises several types for missing codecs and broken pixel data
            raise InputError(src.label, f"unreadable pixel data ({exc})", _EXPECTED) from exc
        if plane.shape != stack.shape[:2]:
            raise InputError(
                src.label,
                f"pixel data of shape {plane.shape[::-1]} in a slice of {stack.shape[1]} × {stack.shape[0]}",
                "pixel data matching Rows and Columns",
            )
        stack[:, :, k] = plane
    return Raw(stack, LPS_TO_RAS @ affine, "dicom", {"series": uid})


def _is_dicom(src: Source) -> bool:
    if src.is_dir or src.files:
        return True
    return src.head[:4] == b"PK\x03\x04" or src.head[128:132] == b"DICM"


DICOM = Reader(
    "dicom",
    "DICOM series (a folder, a .zip of one, or several files; --series UID)",
    (".dcm", ".zip"),
    _is_dicom,
    read_dicom,
    dicom_choices,
    "series",
)
