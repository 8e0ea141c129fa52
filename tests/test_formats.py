"""Every input format holds the sample's voxels and world geometry: loading gives the NIfTI's canonical
volume, and ``explorer analyze`` the same asymmetry index. Files are written in tmp_path by
``tests/corpus/writers.py``; nothing binary is committed."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import h5py
import nibabel as nib
import nibabel.testing
import nilearn
import numpy as np
import pydicom
import pytest
import tifffile
from corpus.writers import (
    dicom_bytes,
    dicom_slices,
    write_dicom_folder,
    write_hdf5,
    write_itk,
    write_mgz,
    zip_bytes,
)

from explorer.analysis import analyze
from explorer.cli import main
from explorer.config import MODELS_DIR, Limits
from explorer.errors import InputError
from explorer.io.readers import source_choices
from explorer.io.volume import load_volume
from explorer.reporting.outputs import write_outputs
from explorer.spec import RunSpec

CHECKPOINT = MODELS_DIR / "unet-mobilenet_v2-imagenet-s0.safetensors"
NILEARN_MGZ = Path(nilearn.__file__).parent / "datasets" / "data" / "test.mgz"


@pytest.fixture(scope="module")
def sample(sample_volume_path):
    """The sample NIfTI's loaded volume, its stored int16 voxels (file order), scale and affine."""
    img = nib.load(sample_volume_path)
    pixels = np.asanyarray(img.dataobj.get_unscaled())
    return load_volume(sample_volume_path), pixels, float(img.dataobj.slope), float(img.dataobj.inter), img.affine


def _sagittal(pixels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels and world positions on a grid whose slices are sagittal, stored flipped in y."""
    data = np.transpose(pixels, (1, 2, 0))[::-1]
    moved = affine.copy()
    moved[:, :3] = affine[:, [1, 2, 0]]
    moved[:3, 3] = affine[:3, :3] @ [0, pixels.shape[1] - 1, 0] + affine[:3, 3]
    moved[:3, 0] = -moved[:3, 0]
    return np.ascontiguousarray(data), moved


def _same(volume, reference, affine: bool = True) -> None:
    assert volume.shape == reference.shape
    np.testing.assert_allclose(volume.data, reference.data, rtol=1e-5, atol=1e-5)
    if affine:
        np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-4)
    else:
        np.testing.assert_allclose(volume.spacing, reference.spacing, atol=1e-6)


# ----------------------------------------------------------------------------------------------- DICOM


def test_dicom_series_as_folder_zip_and_files(sample, tmp_path):
    reference, pixels, slope, inter, affine = sample
    folder = write_dicom_folder(dicom_slices(pixels, affine, slope=slope, intercept=inter), tmp_path / "axial")
    files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir())]
    for source in (folder, zip_bytes({f"series/{n}": b for n, b in files}), files):
        volume = load_volume(source, name="series")
        _same(volume, reference)
        assert volume.header["format"] == "dicom"
    assert load_volume(folder).sha256 == load_volume(files).sha256  # content, not names, identify a series


def test_dicom_sagittal_series_in_shuffled_order(sample, tmp_path):
    reference, pixels, slope, inter, affine = sample
    data, moved = _sagittal(pixels, affine)
    folder = write_dicom_folder(dicom_slices(data, moved, slope=slope, intercept=inter), tmp_path / "sag", seed=3)
    volume = load_volume(folder)
    _same(volume, reference)
    assert nib.aff2axcodes(volume.source_affine)[2] in ("L", "R")  # slices really are sagittal


def test_dicom_several_series_are_listed_and_one_can_be_chosen(sample, tmp_path):
    reference, pixels, slope, inter, affine = sample
    first = dicom_slices(pixels[:, :, :20], affine, slope=slope, intercept=inter, series_uid="1.2.3.1")
    second = dicom_slices(pixels[:, :, :20] // 2, affine, slope=slope, intercept=inter, series_uid="1.2.3.2")
    archive = zip_bytes({f"{ds.SeriesInstanceUID}/{i}.dcm": dicom_bytes(ds) for i, ds in enumerate(first + second)})
    with pytest.raises(
        InputError,
        match=r"^two.zip: 2 DICOM series: 1\.2\.3\.1 \(MR test, 20 images\); 1\.2\.3\.2 .*"
        r"--series UID",
    ):
        load_volume(archive, name="two.zip")
    assert source_choices(archive, Limits(), name="two.zip") == ("series", ["1.2.3.1", "1.2.3.2"])
    one, two = load_volume(archive, series="1.2.3.1"), load_volume(archive, series="1.2.3.2")
    np.testing.assert_allclose(one.data, reference.data[:, :, :20], rtol=1e-5, atol=1e-5)
    assert one.sha256 != two.sha256


def _broken(pixels, affine, slope, inter, how: str) -> list[tuple[str, bytes]]:
    slices = dicom_slices(pixels[:, :, :6], affine, slope=slope, intercept=inter)
    if how == "gap":
        del slices[3]
    elif how == "orientation":
        slices[2].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    elif how == "non-image":
        for ds in slices:
            del ds.PixelData
    return [(f"s{i}.dcm", dicom_bytes(ds)) for i, ds in enumerate(slices)]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("gap", r"uneven slice spacing .*missing slices"),
        ("orientation", "orientations differ between slices"),
        ("non-image", "non-image DICOM only"),
    ],
)
def test_broken_dicom_series_give_one_clear_error(sample, how, message):
    _, pixels, slope, inter, affine = sample
    with pytest.raises(InputError, match=rf"^series: .*{message}"):
        load_volume(_broken(pixels, affine, slope, inter, how), name="series")


# ----------------------------------------------------------------------------------------------- other formats


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mgz"])
def test_nrrd_metaimage_mgz_hold_the_sample(sample, tmp_path, suffix):
    reference, pixels, slope, inter, affine = sample
    data, moved = _sagittal(pixels.astype(np.float32) * slope + inter, affine)
    path = tmp_path / f"sample{suffix}"
    (write_mgz if suffix == ".mgz" else write_itk)(data, moved, path)
    _same(load_volume(path), reference)
    _same(load_volume(path.read_bytes(), name=path.name), reference)  # an upload


def test_detached_nrrd_header_may_not_point_outside_its_folder(sample, tmp_path):
    header = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: /etc/passwd\n\n"
    (tmp_path / "evil.nhdr").write_bytes(header)
    with pytest.raises(InputError, match=r"evil.nhdr: header points to data file '/etc/passwd' outside its folder"):
        load_volume(tmp_path / "evil.nhdr")
    with pytest.raises(InputError, match="points to a separate data file"):
        load_volume(header, name="evil.nrrd")


def test_hdf5_dataset_auto_picked_or_chosen(sample, tmp_path):
    reference = sample[0]
    path = write_hdf5(reference.data, reference.spacing, tmp_path / "em.h5")
    _same(load_volume(path), reference, affine=False)
    with h5py.File(path, "a") as handle:
        handle["other"] = np.zeros((4, 5, 6), np.uint8)
    with pytest.raises(InputError, match=r"em.h5: 2 3D datasets \(other \(4, 5, 6\), volumes/raw .*--dataset PATH"):
        load_volume(path)
    chosen = load_volume(path, dataset="volumes/raw")
    _same(chosen, reference, affine=False)
    assert chosen.sha256 != hashlib.sha256(path.read_bytes()).hexdigest()  # the choice is part of its identity
    assert chosen.header["dataset"] == "volumes/raw"


def test_nilearn_bundled_mgz_loads():
    """nilearn's test.mgz is 4D (3, 4, 5, 2): each volume loads on its own and keeps its own identity."""
    expected = np.asanyarray(nib.as_closest_canonical(nib.load(NILEARN_MGZ)).dataobj)
    with pytest.raises(InputError, match=r"test.mgz: 4D image with 2 volumes"):
        load_volume(NILEARN_MGZ)
    volume = load_volume(NILEARN_MGZ, volume_index=1)
    np.testing.assert_allclose(volume.data, expected[..., 1], rtol=1e-6)
    assert volume.header["format"] == "mgh"


def test_volume_identity_covers_the_volume_index():
    path = Path(nib.testing.data_path) / "example4d.nii.gz"
    first, second = load_volume(path, volume_index=0), load_volume(path, volume_index=1)
    assert first.sha256 != second.sha256


def test_tiff_spacing_from_imagej_and_ome_metadata():
    pages = np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5)
    imagej, ome = io.BytesIO(), io.BytesIO()
    tifffile.imwrite(
        imagej, pages, imagej=True, resolution=(1 / 0.25, 1 / 0.5), metadata={"spacing": 3.0, "unit": "um"}
    )
    tifffile.imwrite(
        ome,
        pages,
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 3.0},
    )
    for raw in (imagej.getvalue(), ome.getvalue()):
        volume = load_volume(raw, name="stack.tif")
        assert volume.spacing == pytest.approx((0.5, 0.25, 3.0))
        assert np.array_equal(volume.stack("axial")[2], pages[2])
    assert load_volume(imagej.getvalue(), spacing=(1, 1, 1)).spacing == (1.0, 1.0, 1.0)


def test_header_bombs_and_bad_geometry_are_refused(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((1100, 1100, 700))
    header.set_data_dtype(np.float32)
    bomb = gzip.compress(header.binaryblock + b"\x00" * 4 + bytes(8 * 1024**2))
    with pytest.raises(InputError, match=r"bomb.nii.gz: image has 847,000,000 voxels"):
        load_volume(bomb, name="bomb.nii.gz")
    for affine, message in [
        (np.diag([1.0, np.nan, 1.0, 1.0]), "NaN or infinite"),
        (np.diag([1.0, 0.0, 1.0, 1.0]), "singular"),
    ]:
        img = nib.Nifti1Image(np.arange(64, dtype=np.float32).reshape(4, 4, 4), None)
        img.header.set_sform(affine, code=2)
        img.header.set_qform(None, code=0)
        with pytest.raises(InputError, match=f"^geom.nii: the voxel-to-world affine .*{message}"):
            load_volume(img.to_bytes(), name="geom.nii")
    big = nib.Nifti1Image(np.arange(64, dtype=np.float64).reshape(4, 4, 4) * 1e300, np.eye(4))
    with pytest.raises(InputError, match="beyond float32's range"):
        load_volume(big.to_bytes(), name="big.nii")


# ----------------------------------------------------------------------------------------------- end to end


#: The axial slices of the sample the CLI comparison analyses (twice): a third of the volume, through the brain.
CLI_SLICES = slice(25, 55)


@pytest.mark.slow
def test_cli_gives_the_niftis_asymmetry_index_for_a_sagittal_dicom_zip(sample, tmp_path, capsys):
    """The same voxels as a NIfTI and as a sagittal DICOM zip (slices stored in reverse) give the same asymmetry
    index through ``explorer analyze`` (a 30-slice axial crop of the sample, saved both ways)."""
    _, pixels, slope, inter, affine = sample
    pixels = pixels[:, :, CLI_SLICES]
    affine = affine.copy()
    affine[:3, 3] += affine[:3, :3] @ [0, 0, CLI_SLICES.start]  # the crop's first slice keeps its world position
    nifti = tmp_path / "crop.nii.gz"
    nib.save(nib.Nifti1Image(pixels.astype(np.float32) * np.float32(slope) + np.float32(inter), affine), nifti)
    data, moved = _sagittal(pixels, affine)
    slices = dicom_slices(data, moved, slope=slope, intercept=inter)
    archive = tmp_path / "series.zip"
    archive.write_bytes(zip_bytes({f"d/IM{i}": dicom_bytes(ds) for i, ds in enumerate(slices[::-1])}))
    _same(load_volume(archive), load_volume(nifti))  # the two files hold the same volume
    results = {}
    for name, path in (("nifti", nifti), ("dicom", archive)):
        capsys.readouterr()
        assert (
            main(
                [
                    "analyze",
                    str(path),
                    "--checkpoint",
                    str(CHECKPOINT),
                    "--out",
                    str(tmp_path / name),
                    "--device",
                    "cpu",
                    "--formats",
                    "none",  # the figures' static renders are not what this test compares
                    "--json",
                ]
            )
            == 0
        )
        summary = json.loads(capsys.readouterr().out)
        results[name] = next(iter(summary["models"].values()))["asymmetry_index"]["mean"]
    assert results["nifti"] == pytest.approx(results["dicom"], abs=0.005)
    assert abs(results["nifti"]) > 0.01  # the imagenet checkpoint is asymmetric: the comparison means something


def test_pydicom_reads_what_the_writer_wrote(sample):
    _, pixels, slope, inter, affine = sample
    ds = pydicom.dcmread(io.BytesIO(dicom_bytes(dicom_slices(pixels[:, :, :2], affine, slope=slope)[1])))
    assert np.array_equal(ds.pixel_array, pixels[:, :, 1].T)


def test_label_map_lies_on_the_input_grid_and_equals_the_prediction(sample_volume_path, tmp_path):
    """A crop stored in LPI voxel order: the label map keeps that order and affine, its voxels the prediction."""
    crop = nib.load(sample_volume_path).slicer[14:62, 20:76, 35:45]
    data = np.asanyarray(crop.dataobj)[::-1, ::-1]
    affine = crop.affine @ np.array([[-1, 0, 0, 47], [0, -1, 0, 55], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "lpi.nii.gz")
    result = analyze(
        tmp_path / "lpi.nii.gz", [CHECKPOINT], RunSpec(device="cpu", keep_maps=True, zflip=False), cache=False
    )
    written = write_outputs(result, tmp_path / "out", figures=False)
    name = next(iter(result.models))
    label = nib.load(written[f"label:{name}"])
    assert label.get_data_dtype() == np.uint8
    np.testing.assert_allclose(label.affine, affine)
    prediction = result.models[name].prediction  # (S, H, W) = axial slices of the canonical (RAS) volume
    assert prediction.any() and not prediction.all()
    expected = np.moveaxis(prediction, 0, -1)[::-1, ::-1]  # canonical → the file's LPI order
    assert np.array_equal(np.asanyarray(label.dataobj), expected.astype(np.uint8))
    probability = nib.load(written[f"probability:{name}"])
    np.testing.assert_allclose(probability.affine, affine)
    assert np.array_equal(np.asanyarray(probability.dataobj) > 0.5, expected)  # thresholded = the label map


@pytest.mark.slow
def test_app_takes_a_dicom_series_as_several_files_and_offers_its_series(sample, warm_cache, monkeypatch):
    from apptools import settle, upload_scan
    from streamlit.testing.v1 import AppTest

    from explorer.config import REPO_ROOT

    _, pixels, slope, inter, affine = sample
    files = [
        (f"{ds.SeriesInstanceUID}-{i}.dcm", dicom_bytes(ds), "application/dicom")
        for uid in ("1.2.3.1", "1.2.3.2")
        for i, ds in enumerate(dicom_slices(pixels[:, :, 30:40], affine, slope=slope, intercept=inter, series_uid=uid))
    ]
    warm_cache.use(monkeypatch)  # the first visit's results are there: its job ends at once, none is left running
    at = AppTest.from_file(str(REPO_ROOT / "explorer" / "app" / "main.py"), default_timeout=600)
    settle(at.run())
    upload_scan(at, files)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="volume_choice").options == ["1.2.3.1", "1.2.3.2"]
    at.selectbox(key="volume_choice").set_value("1.2.3.2").run()
    assert any("20 files: (77, 94, 10) voxels" in c.value for c in at.caption), [c.value for c in at.caption]
    settle(at)
