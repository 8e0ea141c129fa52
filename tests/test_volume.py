"""Volume and mask loading: real files, orientation, and every kind of bad input named in the error."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import nibabel as nib
import nibabel.testing
import numpy as np
import pytest
import tifffile

from explorer.config import Limits
from explorer.errors import InputError
from explorer.io.normalise import NORMALISATIONS, channel_stats_for, normalise
from explorer.io.volume import load_mask, load_volume

NIBABEL_DATA = Path(nibabel.testing.data_path)


def _nifti_bytes(data: np.ndarray, affine: np.ndarray | None = None, gz: bool = True) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4) if affine is None else affine, dtype=data.dtype)
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def _phantom(shape=(12, 10, 8)) -> np.ndarray:
    """A small volume whose every voxel is distinct, so any reordering is visible."""
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


# ----------------------------------------------------------------------------------------- real files


def test_sample_volume_loads_canonical_float32(sample_volume_path, sample_mask_path):
    vol = load_volume(sample_volume_path)
    assert vol.shape == (77, 94, 80)
    assert vol.data.dtype == np.float32
    assert vol.spacing == (2.0, 2.0, 2.0)
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.sha256 == hashlib.sha256(sample_volume_path.read_bytes()).hexdigest()
    assert vol.stack("axial").shape == (80, 77, 94)
    mask = load_mask(sample_mask_path, vol)
    assert mask.data.dtype == bool and mask.data.shape == vol.shape
    assert 0.2 < mask.data.mean() < 0.5  # grey matter is a sizeable part of the head box


def test_bytes_and_path_give_the_same_volume(sample_volume_path):
    a = load_volume(sample_volume_path)
    b = load_volume(sample_volume_path.read_bytes(), name="upload.nii.gz")
    assert np.array_equal(a.data, b.data) and a.sha256 == b.sha256 and b.source == "upload.nii.gz"


@pytest.mark.parametrize(
    ("name", "index"), [("anatomical.nii", None), ("standard.nii.gz", None), ("example_nifti2.nii.gz", 1)]
)
def test_nibabel_bundled_images_load(name, index):
    path = NIBABEL_DATA / name
    vol = load_volume(path, volume_index=index)
    expected = np.squeeze(np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj)).astype(np.float32)
    assert np.allclose(vol.data, expected if index is None else expected[..., index])


def test_4d_image_needs_a_volume_index():
    path = NIBABEL_DATA / "example4d.nii.gz"
    with pytest.raises(InputError, match=r"example4d.nii.gz: 4D image with 2 volumes.*volume_index"):
        load_volume(path)
    vol = load_volume(path, volume_index=1)
    expected = np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj)[..., 1]
    assert np.allclose(vol.data, expected)


def test_4d_singleton_is_squeezed():
    data = _phantom()
    vol = load_volume(_nifti_bytes(data[..., None]))
    assert np.array_equal(vol.data, data)


# ----------------------------------------------------------------------------------------- orientation


def test_reorientation_and_affine_round_trip(tmp_path):
    """A file stored LPI-flipped is read in RAS order, and a result written back matches the file's grid."""
    data = _phantom()
    affine = np.array([[-2.0, 0, 0, 30], [0, -3.0, 0, 40], [0, 0, 1.5, -5], [0, 0, 0, 1]])
    path = tmp_path / "flipped.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    vol = load_volume(path)
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert np.array_equal(vol.data, data[::-1, ::-1, :])
    assert vol.spacing == (2.0, 3.0, 1.5)
    # Each voxel keeps its world position: canonical voxel (0,0,0) is file voxel (11, 9, 0).
    assert np.allclose(vol.affine @ [0, 0, 0, 1], affine @ [11, 9, 0, 1])
    back, back_affine = vol.to_source_order(vol.data)
    out = tmp_path / "result.nii.gz"
    nib.save(nib.Nifti1Image(back, back_affine), out)
    reloaded = nib.load(out)
    assert np.array_equal(np.asanyarray(reloaded.dataobj), data)
    assert np.allclose(reloaded.affine, affine)


def test_nonfinite_voxels_are_replaced_and_counted():
    data = _phantom()
    data[0, 0, 0], data[1, 0, 0], data[2, 0, 0] = np.nan, np.inf, -np.inf
    vol = load_volume(_nifti_bytes(data))
    assert vol.nonfinite == 3
    finite = data[np.isfinite(data)]
    assert vol.data[0, 0, 0] == finite.min() and vol.data[1, 0, 0] == finite.max()
    assert vol.data[2, 0, 0] == finite.min() and np.isfinite(vol.data).all()


def test_tiff_stack_pages_become_slices_in_order():
    pages = np.stack([np.full((6, 5), z, dtype=np.uint16) + np.arange(5, dtype=np.uint16) for z in range(7)])
    buf = io.BytesIO()
    tifffile.imwrite(buf, pages)
    vol = load_volume(buf.getvalue(), name="stack.tif", spacing=(4.0, 4.0, 30.0))
    stack = vol.stack("axial")
    assert stack.shape == (7, 6, 5)
    for z in range(7):
        assert np.array_equal(stack[z], pages[z])
    assert vol.spacing == (4.0, 4.0, 30.0)


# ----------------------------------------------------------------------------------------- bad input


def _truncated_gzip(sample: Path) -> bytes:
    raw = sample.read_bytes()
    return raw[: len(raw) // 2]


def _huge_header() -> bytes:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((4000, 4000, 4000))
    hdr.set_data_dtype(np.float32)
    return hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1024


BAD_VOLUMES = {
    "empty": (lambda s: b"", "file is empty"),
    "truncated gzip": (_truncated_gzip, "gzip data is truncated or corrupt"),
    "not a nifti": (lambda s: b"hello, this is a text file" * 40, "not a NIfTI or TIFF file"),
    "2D image": (lambda s: _nifti_bytes(np.ones((8, 8), np.float32)), r"2D image"),
    "5D image": (lambda s: _nifti_bytes(np.ones((4, 4, 4, 2, 2), np.float32)), r"5D image"),
    "zero-length axis": (lambda s: _nifti_bytes(np.ones((4, 0, 4), np.float32)), "zero-length axis"),
    "all NaN": (lambda s: _nifti_bytes(np.full((4, 4, 4), np.nan, np.float32)), "every voxel is NaN"),
    "constant": (lambda s: _nifti_bytes(np.full((4, 4, 4), 7, np.float32)), "every voxel has the value 7"),
    "complex": (lambda s: _nifti_bytes(np.ones((4, 4, 4), np.complex64)), "complex-valued"),
    "huge header": (lambda s: _huge_header(), "voxels .* over the limit"),
    "truncated voxels": (lambda s: _nifti_bytes(_phantom(), gz=False)[:-100], "file is truncated"),
}


@pytest.mark.parametrize("case", list(BAD_VOLUMES), ids=list(BAD_VOLUMES))
def test_bad_volume_gives_one_clear_error(case, sample_volume_path):
    make, message = BAD_VOLUMES[case]
    with pytest.raises(InputError, match=rf"^bad\.nii\.gz: .*{message}"):
        load_volume(make(sample_volume_path), name="bad.nii.gz")


def test_missing_file_and_size_limit(tmp_path, sample_volume_path):
    with pytest.raises(InputError, match="nope.nii: no such file"):
        load_volume(tmp_path / "nope.nii")
    with pytest.raises(InputError, match=r"over the 0 MB limit.*EXPLORER_MAX_UPLOAD_MB"):
        load_volume(sample_volume_path, limits=Limits(max_bytes=1000))


def test_int64_extremes_load_as_finite_float32():
    data = np.zeros((4, 4, 4), dtype=np.int64)
    data[0, 0, 0], data[1, 1, 1] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    vol = load_volume(_nifti_bytes(data))
    assert np.isfinite(vol.data).all() and vol.data.max() > 9e18 and vol.data.min() < -9e18
    assert np.isfinite(normalise(vol.data)).all()


def test_mask_must_match_shape_and_affine(sample_volume_path):
    vol = load_volume(sample_volume_path)
    other_shape = _nifti_bytes(np.ones((10, 10, 10), np.uint8), vol.source_affine)
    with pytest.raises(InputError, match=r"m.nii.gz: mask has shape \(10, 10, 10\) but the volume has \(77, 94, 80\)"):
        load_mask(other_shape, vol, name="m.nii.gz")
    shifted = vol.source_affine.copy()
    shifted[0, 3] += 5
    other_affine = _nifti_bytes(np.ones(vol.shape, np.uint8), shifted)
    with pytest.raises(InputError, match="m.nii.gz: mask affine differs"):
        load_mask(other_affine, vol, name="m.nii.gz")


# ----------------------------------------------------------------------------------------- normalisation


def test_normalisation_presets(sample_volume_path):
    data = load_volume(sample_volume_path).data
    z = normalise(data, "zscore")
    assert z.dtype == np.float32 and abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3
    m = normalise(data, "minmax")
    assert m.min() == 0.0 and m.max() == 1.0
    ct = normalise(np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0], np.float32), "ct-brain")
    assert np.allclose(ct, [0, 0, 0.5, 1, 1])
    assert channel_stats_for("zscore", 3) is None
    mean, std = channel_stats_for("imagenet", 3)
    assert mean.shape == std.shape == (3,)
    with pytest.raises(InputError, match="defines 3 channels, the window has 5"):
        channel_stats_for("imagenet", 5)
    with pytest.raises(InputError, match="unknown normalisation 'nope'; expected one of: ct-bone"):
        normalise(data, "nope")
    assert set(NORMALISATIONS) >= {"zscore", "minmax", "ct-brain", "imagenet"}
