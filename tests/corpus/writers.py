"""Write one volume (voxels in file order + a RAS affine) as a DICOM series, NRRD, MetaImage, MGZ or HDF5.

Used by ``tests/test_formats.py`` (the same voxels and world geometry in every format) and by the corpus
(hostile variants). DICOM: one MR Image Storage file per slice, ImageOrientationPatient, ImagePositionPatient
and PixelSpacing from the affine converted RAS → LPS, int16 pixels with RescaleSlope/Intercept.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS


def dicom_slices(
    pixels: np.ndarray,
    affine: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    series_uid: str | None = None,
    description: str = "test",
) -> list[pydicom.Dataset]:
    """One dataset per slice ``k`` of ``pixels`` (int16 ``(I, J, K)``: column, row, slice)."""
    lps = FLIP @ np.asarray(affine, dtype=np.float64)
    sizes = np.linalg.norm(lps[:3, :3], axis=0)
    row, col = lps[:3, 0] / sizes[0], lps[:3, 1] / sizes[1]
    series_uid, study_uid = series_uid or generate_uid(), generate_uid()
    out = []
    for k in range(pixels.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", description, k + 1
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row, *col)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.PixelSpacing = [f"{sizes[1]:.6f}", f"{sizes[0]:.6f}"]  # row spacing, column spacing
        plane = np.ascontiguousarray(pixels[:, :, k].T.astype(np.int16))
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        ds.PixelData = plane.tobytes()
        out.append(ds)
    return out


def dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_dicom_folder(slices: list[pydicom.Dataset], folder: Path, seed: int | None = 0) -> Path:
    """Write the slices as ``IM<n>`` files, numbered in a shuffled order when ``seed`` is given."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(slices)) if seed is not None else range(len(slices))
    for n, k in enumerate(order):
        (folder / f"IM{n:04d}").write_bytes(dicom_bytes(slices[k]))
    return folder


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_itk(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """NRRD or MetaImage (by suffix) with the affine's spacing, direction and origin in LPS."""
    lps = FLIP @ np.asarray(affine, dtype=np.float64)
    sizes = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing([float(s) for s in sizes])
    image.SetDirection([float(v) for v in (lps[:3, :3] / sizes).ravel()])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    sitk.WriteImage(image, str(path), True)
    return path


def write_mgz(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.MGHImage(data, affine), path)
    return path


def write_hdf5(
    canonical: np.ndarray, spacing: tuple[float, float, float], path: Path, name: str = "volumes/raw"
) -> Path:
    """``canonical`` ``(X, Y, Z)`` stored z-first ``(Z, X, Y)`` with ``element_size_um`` (z, x, y)."""
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset(name, data=np.moveaxis(canonical, 2, 0), compression="gzip")
        dataset.attrs["element_size_um"] = (spacing[2], spacing[0], spacing[1])
    return path
