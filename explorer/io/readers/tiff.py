"""Multi-page TIFF stacks through tifffile: page ``z`` becomes ``data[:, :, z]`` (rows, columns).

Pages' declared shapes are checked before any page is decoded: pages of two shapes are refused (tifffile
groups them into two series), and the voxel limit applies to the declared stack. Voxel spacing comes from
the ``spacing`` parameter, else ImageJ or OME metadata, else 1.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np

from ...config import Limits
from ...errors import InputError
from .base import Raw, Reader, ReadParams, check_voxels, grid_affine
from .source import Source

__all__ = ["tiff_pages", "read_tiff", "TIFF"]


_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_EXPECTED = "a multi-page greyscale TIFF stack"


def _imagej_spacing(tif) -> tuple[float, float, float] | None:
    """ImageJ stores pixels per unit in X/YResolution and the slice distance as ``spacing``."""
    meta = tif.imagej_metadata or {}
    if "spacing" not in meta:
        return None
    tags = tif.pages[0].tags

    def size(tag: str) -> float:
        if tag not in tags:
            return 1.0
        num, den = tags[tag].value
        return float(den) / float(num) if num else 1.0

    return size("YResolution"), size("XResolution"), float(meta["spacing"])  # rows, columns, pages


def _ome_spacing(tif) -> tuple[float, float, float] | None:
    if not tif.ome_metadata:
        return None
    try:
        pixels = ET.fromstring(tif.ome_metadata).find(".//{*}Pixels")
    except ET.ParseError:
        return None
    if pixels is None or "PhysicalSizeZ" not in pixels.attrib:
        return None
    return tuple(float(pixels.attrib.get(k, 1.0)) for k in ("PhysicalSizeY", "PhysicalSizeX", "PhysicalSizeZ"))


def tiff_pages(src: Source, limits: Limits | None) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """The stack ``(pages, rows, columns)`` and the spacing found in its metadata (None when there is none).

    Raises:
        InputError: unreadable file, pages of several shapes, over the voxel limit, 2D or colour images.
    """
    import tifffile  # imported here: only TIFF input needs it

    try:
        with tifffile.TiffFile(io.BytesIO(src.data)) as tif:
            shapes = sorted({(tuple(page.shape), str(page.dtype)) for page in tif.pages})  # IFDs only, no pixels
            if len(shapes) > 1:
                listing = ", ".join(f"{shape} {dtype}" for shape, dtype in shapes[:4])
                raise InputError(
                    src.label,
                    f"TIFF holds pages of {len(shapes)} shapes ({listing})",
                    "a stack whose pages all have one shape and type",
                )
            one_series = len(tif.series) == 1  # else pages written one by one: stack them all
            declared = tif.series[0].shape if one_series else (len(tif.pages), *shapes[0][0])
            if limits is not None:
                check_voxels(declared, src.label, limits, itemsize=np.dtype(shapes[0][1]).itemsize)
            pages = tif.series[0].asarray() if one_series else tif.asarray(key=slice(None))
            spacing = _imagej_spacing(tif) or _ome_spacing(tif)
    except InputError:
        raise
    except Exception as exc:  # tifffile raises several types for broken files
        raise InputError(src.label, f"unreadable TIFF ({exc})", _EXPECTED) from exc
    if pages.ndim == 2:
        raise InputError(src.label, f"single-page TIFF (shape {pages.shape}) is a 2D image", "a multi-page TIFF stack")
    if pages.ndim != 3:
        raise InputError(
            src.label,
            f"TIFF of shape {pages.shape} (colour or multi-channel?)",
            "a multi-page greyscale TIFF stack (pages, rows, columns)",
        )
    return pages, spacing


def read_tiff(src: Source, params: ReadParams, limits: Limits) -> Raw:
    pages, found = tiff_pages(src, limits)
    spacing = params.spacing or found
    return Raw(
        np.moveaxis(pages, 0, -1),
        grid_affine(spacing, src.label),
        "tiff",
        {"spacing": list(spacing) if spacing else None},
    )


TIFF = Reader(
    "tiff",
    "multi-page TIFF stack (.tif, .tiff; spacing from ImageJ/OME metadata or --spacing)",
    (".tif", ".tiff"),
    lambda src: src.head[:4] in _MAGICS,
    read_tiff,
)
