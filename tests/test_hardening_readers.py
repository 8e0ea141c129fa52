"""Issue 20, the readers: what the hostile corpus (tests/corpus/round3_readers.py) cannot show with one file.

Headers never make the reader open a file outside the upload (detached data only from a path, beside the
header); the cohort zip and the app's upload refuse detached headers; a deflated DICOM series and chunked HDF5
still read; and the real console script prints one line where a library would write to stderr itself. The bombs'
peak memory is measured with the corpus's (tests/test_corpus.py), in the same forked children.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from corpus.round3_readers import MHA_PASSWD, ROUND3_READER_CASES
from corpus.writers import dicom_bytes, dicom_slices, write_dicom_folder, zip_bytes
from streamlit.testing.v1 import AppTest

from explorer.app.cohort import extract_zip
from explorer.config import REPO_ROOT, SAMPLE_DIR, Limits
from explorer.errors import InputError
from explorer.io.volume import load_volume

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")

RNG = np.random.default_rng(0)
VOXELS = RNG.random((16, 12, 8)).astype(np.float32)  # (i, j, k), stored x fastest
HEADER = b"ObjectType = Image\nNDims = 3\nDimSize = 16 12 8\nElementType = MET_FLOAT\nElementDataFile = %s\n"


def _detached(folder: Path, data_name: str = "voxels.raw") -> Path:
    """``scan.mhd`` in ``folder`` naming ``data_name``, and the voxels written as ``voxels.raw`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "voxels.raw").write_bytes(VOXELS.astype("<f4").tobytes(order="F"))
    header = folder / "scan.mhd"
    header.write_bytes(HEADER % data_name.encode())
    return header


def test_a_detached_header_beside_its_data_reads_from_a_path(tmp_path: Path) -> None:
    volume = load_volume(_detached(tmp_path / "scan"))
    np.testing.assert_array_equal(volume.data, VOXELS[::-1, ::-1, :])  # LPS file axes → RAS: i and j flipped


@pytest.mark.parametrize("where", ["absolute", "parent", "subfolder", "link"])
def test_a_header_never_reads_a_file_outside_its_folder(tmp_path: Path, where: str) -> None:
    """A data file the header may not name holds valid voxels: reading it would succeed, so only the refusal
    shows that it was never opened."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(VOXELS.astype("<f4").tobytes(order="F"))
    folder = tmp_path / "scan"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "secret.raw").write_bytes(secret.read_bytes())
    name = {"absolute": str(secret), "parent": "../secret.raw", "subfolder": "sub/secret.raw", "link": "link.raw"}
    if where == "link":
        (folder / "link.raw").symlink_to(secret)
    header = _detached(folder, name[where])
    expected = "leads outside the folder" if where == "link" else "outside its folder"
    with pytest.raises(InputError, match=f"scan.mhd: .*{expected}"):
        load_volume(header)


@pytest.mark.parametrize("case", ["beside", "passwd"])
def test_an_uploaded_detached_header_is_refused(tmp_path: Path, case: str) -> None:
    header = _detached(tmp_path) if case == "beside" else None
    raw = header.read_bytes() if header is not None else MHA_PASSWD
    with pytest.raises(InputError, match=r"separate data file .*detached headers .* only from a path"):
        load_volume(raw, name="scan.mhd")
    with pytest.raises(InputError, match=r"^scan.mhd: header points to a separate data file"):  # several uploads
        load_volume([("scan.mhd", raw), ("voxels.raw", (tmp_path / "voxels.raw").read_bytes() if header else b"x")])


def test_the_cohort_zip_refuses_detached_headers_before_writing(tmp_path: Path) -> None:
    header = _detached(tmp_path / "src")
    manifest = b"volume\nscan.mhd\n"
    for members in (
        {
            "study/manifest.csv": manifest,
            "study/scan.mhd": header.read_bytes(),
            "study/voxels.raw": (tmp_path / "src" / "voxels.raw").read_bytes(),
        },
        {"study/manifest.csv": manifest, "study/scan.mha": MHA_PASSWD},
    ):
        target = tmp_path / f"out{len(members)}"
        target.mkdir()
        with pytest.raises(InputError, match=r"study/scan.mh[ad]: header points to a separate data file"):
            extract_zip(zip_bytes(members), target)
        assert list(target.iterdir()) == []
    attached = (SAMPLE_DIR / "cohort" / "sub-01_T1w.nii.gz").read_bytes()
    fine = zip_bytes({"study/manifest.csv": b"volume\nsub-01.nii.gz\n", "study/sub-01.nii.gz": attached})
    assert extract_zip(fine, tmp_path / "fine").name == "manifest.csv"


@pytest.mark.slow
def test_the_app_cohort_zip_shows_one_message(tmp_path: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["mode"] = "Cohort"
    at.run()
    at.radio(key="cohort_source").set_value("Upload a zip").run()
    zipped = zip_bytes({"study/manifest.csv": b"volume\nscan.mha\n", "study/scan.mha": MHA_PASSWD})
    at.file_uploader(key="cohort_zip").set_value(("cohort.zip", zipped, "application/zip")).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "study/scan.mha: header points to a separate data file '/etc/passwd'; expected an upload that carries its "
        "voxels (.nrrd with attached data, or .mha with ElementDataFile = LOCAL); detached headers (.nhdr, .mhd) "
        "are read only from a path, with the CLI or the Python API"
    ]


def test_a_deflated_dicom_series_reads_as_the_plain_one(tmp_path: Path) -> None:
    pixels = (np.indices((16, 12, 5)).sum(axis=0) * 10).astype(np.int16)  # smooth: deflates well
    slices = dicom_slices(pixels, np.diag([0.8, 0.8, 2.0, 1.0]))
    plain = load_volume(write_dicom_folder(slices, tmp_path / "plain"))
    for ds in slices:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    files = [(f"IM{i}", dicom_bytes(ds)) for i, ds in enumerate(slices)]
    assert pixels[:, :, 0].T.tobytes() not in files[0][1]  # the pixels are stored deflated
    deflated = load_volume(files)
    np.testing.assert_array_equal(deflated.data, plain.data)
    np.testing.assert_array_equal(deflated.affine, plain.affine)
    stored = sum(len(raw) for _, raw in files)  # within the limit as files, over it once inflated
    with pytest.raises(InputError, match=rf"5 files: IM\d: deflated DICOM data inflate to more than {stored:,} bytes"):
        load_volume(files, limits=Limits(max_bytes=stored))


def test_a_compressed_metaimage_is_measured_before_itk_reads_it() -> None:
    """MetaIO writes a bad compressed stream's error to stderr and returns garbage: the reader measures the
    stream first, and needs CompressedDataSize to know where it ends."""
    body = zlib.compress(VOXELS.astype("<f4").tobytes(order="F"))
    header = HEADER.replace(b"ElementDataFile", b"CompressedData = True\nCompressedDataSize = %d\nElementDataFile")
    header = header % (len(body), b"LOCAL")
    np.testing.assert_array_equal(load_volume(header + body, name="whole.mha").data, VOXELS[::-1, ::-1, :])
    with pytest.raises(InputError, match=r"short.mha: file is truncated: header promises 6144 bytes of voxels"):
        load_volume(header + body[: len(body) // 2], name="short.mha")
    with pytest.raises(InputError, match=r"bad.mha: compressed voxel data are corrupt"):
        load_volume(header + b"x" * len(body), name="bad.mha")
    undeclared = header.replace(b"CompressedDataSize = %d\n" % len(body), b"")
    with pytest.raises(InputError, match=r"undeclared.mha: compressed voxels without CompressedDataSize"):
        load_volume(undeclared + body, name="undeclared.mha")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["dicom_deep_sequence.zip", "mha_truncated.mha", "mha_no_dimsize.mha", "mha_blank_line_passwd.mha"]
)
def test_console_script_prints_one_line(name: str, tmp_path: Path) -> None:
    """The real process: a RecursionError's traceback or MetaIO's lines on std::cerr would show here."""
    from corpus.make_corpus import _Context, _crop

    crop, affine = _crop()
    (tmp_path / name).write_bytes(ROUND3_READER_CASES[name][1](_Context(tmp_path, crop, affine, {}, {})))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "explorer.cli",
            "analyze",
            str(tmp_path / name),
            "--checkpoint",
            "missing.safetensors",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in lines[0], done.stderr
    assert not (tmp_path / "out").exists() and done.stdout == ""
