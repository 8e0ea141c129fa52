"""Hostile inputs for the format readers (issues 11 and 16), merged into the corpus of ``make_corpus.py``.

Each builder takes the corpus context (``c.crop``, ``c.affine``: a crop of the sample) and returns the file's
bytes; :data:`FORMAT_CASES` has the corpus table's layout: name -> (role, builder, message regex, environment).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable

import h5py
import nibabel as nib
import numpy as np
import tifffile

try:
    from corpus.writers import dicom_bytes, dicom_slices, zip_bytes
except ModuleNotFoundError:  # run as a script (python tests/corpus/make_corpus.py): this folder is on sys.path
    from writers import dicom_bytes, dicom_slices, zip_bytes


def _dicom_zip(c, broken: str) -> bytes:
    """The crop as a DICOM series in a zip with one flaw: a ``traversal`` member name, or one slice's ``sizes``."""
    slices = dicom_slices(np.round(c.crop * 1000).astype(np.int16), c.affine, slope=0.001)
    members = {f"series/IM{i}": dicom_bytes(ds) for i, ds in enumerate(slices)}
    if broken == "traversal":
        members["../../outside.dcm"] = members.pop("series/IM0")
    else:
        small = slices[3]
        small.Rows, small.Columns = small.Rows // 2, small.Columns // 2
        small.PixelData = np.zeros((small.Rows, small.Columns), np.int16).tobytes()
        members["series/IM3"] = dicom_bytes(small)
    return zip_bytes(members)


def _hdf5(build: Callable[[h5py.File], object]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _huge(handle: h5py.File) -> None:
    handle.create_dataset("raw", shape=(4000, 4000, 4000), dtype=np.float32, chunks=(1, 64, 64))  # nothing stored


def _linked(handle: h5py.File) -> None:
    handle.create_dataset("small", data=np.arange(64, dtype=np.float32).reshape(4, 4, 4))
    handle["raw"] = h5py.ExternalLink("/etc/passwd", "/raw")


def _gzip_bomb() -> bytes:
    """A header declaring 1100 × 1100 × 700 float32 (3.4 GB) and 16 MB of zeros: about 16 kB compressed."""
    header = nib.Nifti1Header()
    header.set_data_shape((1100, 1100, 700))
    header.set_data_dtype(np.float32)
    return gzip.compress(header.binaryblock + b"\x00" * 4 + bytes(16 * 1024**2))


def _tiff_bomb() -> bytes:
    """Nine zlib pages of 4096 × 4096 zeros: 151 M voxels declared (over 512³) in about 150 kB."""
    buffer, page = io.BytesIO(), np.zeros((4096, 4096), np.uint8)
    tifffile.imwrite(buffer, iter([page] * 9), shape=(9, 4096, 4096), dtype=np.uint8, compression="zlib")
    return buffer.getvalue()


def _two_shapes() -> bytes:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as tif:
        for shape in [(8, 8)] * 3 + [(6, 6)] * 2:
            tif.write(np.ones(shape, np.uint8))
    return buffer.getvalue()


def _nifti(c, **fields) -> bytes:
    """The crop as float32 NIfTI bytes with header ``fields`` set as written (nibabel would rewrite them)."""
    header = nib.Nifti1Image(c.crop, c.affine).header.copy()
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    for key, value in fields.items():
        header[key] = value
    return gzip.compress(header.binaryblock + b"\x00" * 4 + np.asarray(c.crop, np.float32).tobytes(order="F"))


FORMAT_CASES: dict[str, tuple[str, Callable, str | None, dict[str, str]]] = {
    "dicom_path_traversal.zip": (
        "volume",
        lambda c: _dicom_zip(c, "traversal"),
        r"zip member '\.\./\.\./outside\.dcm' points outside the archive",
        {},
    ),
    "dicom_inconsistent_sizes.zip": (
        "volume",
        lambda c: _dicom_zip(c, "sizes"),
        r"sizes \(rows, columns\) differ between slices",
        {},
    ),
    "hdf5_huge_shape.h5": ("volume", lambda c: _hdf5(_huge), r"64,000,000,000 voxels .* over the limit", {}),
    "hdf5_external_link.h5": ("volume", lambda c: _hdf5(_linked), r"external link 'raw' -> /etc/passwd", {}),
    "gzip_bomb.nii.gz": ("volume", lambda c: _gzip_bomb(), r"847,000,000 voxels .* over the limit", {}),
    "zlib_bomb.tif": ("volume", lambda c: _tiff_bomb(), r"150,994,944 voxels .* over the limit", {}),
    "two_page_shapes.tif": ("volume", lambda c: _two_shapes(), r"TIFF holds pages of 2 shapes", {}),
    "nan_affine.nii.gz": (
        "volume",
        lambda c: _nifti(c, sform_code=2, qform_code=0, srow_y=[0, np.nan, 0, 0]),
        "affine holds NaN",
        {},
    ),
    "beyond_float32.nii.gz": (
        "volume",
        lambda c: _nifti(c, scl_slope=1e38, scl_inter=3e38),
        "beyond float32's range",
        {},
    ),
}
