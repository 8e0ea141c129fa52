"""NRRD/NHDR and MetaImage (``.mha``/``.mhd``) through SimpleITK, converted from LPS to RAS.

The text header is checked first: a detached data file (``.nhdr``, ``.mhd``) must be a plain file name
beside the header, and an upload must carry its data (an attached ``.nrrd`` or ``.mha``), so a header can
never make the server read another file. SimpleITK then reads only the image information, the declared
size is checked against the voxel limit, and only then are the voxels read. An upload is written to a
private temporary folder under a fixed name, because SimpleITK reads from file names only.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..config import Limits
from ..errors import InputError
from .base import LPS_TO_RAS, Raw, Reader, ReadParams, check_voxels
from .source import Source

_DATA_FILE = re.compile(rb"^\s*(data ?file|ElementDataFile)\s*[:=]\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_EXPECTED = "an NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) 3D image"


def _header_text(src: Source) -> bytes:
    """The text header: up to the first blank line (NRRD) or the ElementDataFile line (MetaImage)."""
    head = src.data[:65536]
    end = head.find(b"\n\n")
    return head[: end if end >= 0 else len(head)]


def _check_data_file(src: Source) -> None:
    for match in _DATA_FILE.finditer(_header_text(src)):
        value = match.group(2).decode("latin-1")
        if value.upper() == "LOCAL":
            continue
        if src.raw is not None:
            raise InputError(src.label, f"header points to a separate data file {value!r}",
                             "an upload that carries its voxels (.nrrd with attached data, or .mha)")
        path = PurePosixPath(value.split()[0]) if value else PurePosixPath("")
        if path.is_absolute() or ".." in path.parts or len(path.parts) != 1 or value.upper().startswith("LIST"):
            raise InputError(src.label, f"header points to data file {value!r} outside its folder",
                             "a data file name beside the header")


def _read_image(path: Path, label: str, limits: Limits):
    import SimpleITK as sitk  # imported here: only these formats need it

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(label, f"unreadable header ({str(exc).strip().splitlines()[-1]})", _EXPECTED) from exc
    size = tuple(reader.GetSize())
    check_voxels((*size, reader.GetNumberOfComponents()), label, limits)
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(label, f"{reader.GetDimension()}D image of size {size} with "
                         f"{reader.GetNumberOfComponents()} components per voxel", "a 3D scalar image")
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(label, f"unreadable voxels ({str(exc).strip().splitlines()[-1]})", _EXPECTED) from exc
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))  # ITK (z, y, x) → (i, j, k)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3) @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return array, LPS_TO_RAS @ affine


def read_itk(src: Source, params: ReadParams, limits: Limits) -> Raw:
    _check_data_file(src)
    kind = "nrrd" if src.head.startswith(b"NRRD") else "metaimage"
    if src.raw is None:
        array, affine = _read_image(src.path, src.label, limits)  # type: ignore[arg-type]
    else:
        with tempfile.TemporaryDirectory(prefix="explorer-itk-") as tmp:
            path = Path(tmp) / ("upload.nrrd" if kind == "nrrd" else "upload.mha")
            path.write_bytes(src.raw)
            array, affine = _read_image(path, src.label, limits)
    return Raw(array, affine, kind)


def _is_metaimage(src: Source) -> bool:
    return src.suffix in (".mha", ".mhd") or b"ObjectType" in src.head[:256]


NRRD = Reader("nrrd", "NRRD (.nrrd, .nhdr)", (".nrrd", ".nhdr"), lambda src: src.head.startswith(b"NRRD000"),
              read_itk)
METAIMAGE = Reader("metaimage", "MetaImage (.mha, .mhd)", (".mha", ".mhd"), _is_metaimage, read_itk)
