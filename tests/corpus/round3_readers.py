"""Hostile inputs for the volume readers from the third hardening round (issue 20), merged into the corpus of
``make_corpus.py``: headers that name local files, bombs that inflate past the limits, broken DICOM, HDF5 and
MGZ headers, and files whose messages were unclear.

Each builder takes the corpus context (``c.crop``, ``c.affine``: a crop of the sample) and returns the file's
bytes; :data:`ROUND3_READER_CASES` has the corpus table's layout: name -> (role, builder, message regex,
environment). Cases that need more than one file are in ``tests/test_hardening_readers.py``; the bombs' peak
memory at the default limits is checked in ``tests/test_corpus.py`` (with :func:`mgz_at_the_limit`, which is not
a corpus case: read in full by every corpus test, it would cost each seconds).
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable

import h5py
import nibabel as nib
import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

try:
    from corpus.writers import dicom_bytes, dicom_slices, zip_bytes
except ModuleNotFoundError:  # run as a script (python tests/corpus/make_corpus.py): this folder is on sys.path
    from writers import dicom_bytes, dicom_slices, zip_bytes

#: A MetaImage header whose blank line once ended the check before ``ElementDataFile`` (189 bytes in issue 20).
MHA_PASSWD = (
    b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n\nElementDataFile = /etc/passwd\n"
)
#: Inflated size of the deflated DICOM bomb: over the default 512 MB upload limit.
_DEFLATE_MB = 600


def mgz_at_the_limit() -> bytes:
    """512³ float32 zeros as MGZ: 512 MiB of voxels (both limits reached, neither passed) in about 520 kB."""
    header = (struct.pack(">7i", 1, 512, 512, 512, 1, 3, 0) + b"\x00" * 256)[:284]
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as stream:
        stream.write(header)
        chunk = bytes(64 * 1024**2)
        for _ in range(8):
            stream.write(chunk)
    return buffer.getvalue()


def _nrrd_far(c) -> bytes:
    """An NRRD header whose ``data file`` line lies 70 kB in, behind a comment (the old check read 64 kB)."""
    return (
        b"NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n# "
        + b"x" * 70_000
        + b"\ndata file: /etc/passwd\n\n"
    )


def _nrrd_endless(c) -> bytes:
    """An NRRD header of 1.1 MB of comments with no blank line: too long to parse, refused."""
    return b"NRRD0004\ntype: unsigned char\n" + (b"# " + b"x" * 998 + b"\n") * 1100


def _series(c, change: Callable[[list], None]) -> bytes:
    """The crop as a zipped DICOM series, with ``change`` applied to its slices."""
    slices = dicom_slices(np.round(c.crop * 1000).astype(np.int16), c.affine, slope=0.001)
    change(slices)
    return zip_bytes({f"series/IM{i}": dicom_bytes(ds) for i, ds in enumerate(slices)})


def _no_rows(slices: list) -> None:
    del slices[2].Rows


def _iop_five(slices: list) -> None:
    for ds in slices:
        ds.ImageOrientationPatient = list(ds.ImageOrientationPatient)[:5]


def _ipp_two(slices: list) -> None:
    for ds in slices:
        ds.ImagePositionPatient = list(ds.ImagePositionPatient)[:2]


def _frames_text(slices: list) -> None:
    for ds in slices:  # written raw: pydicom refuses to set an IS element to text
        ds[0x00280008] = RawDataElement(Tag(0x00280008), "IS", 4, b"many", 0, False, True)


def _mixed_samples(slices: list) -> None:
    ds = slices[1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = np.zeros((ds.Rows, ds.Columns, 3), np.int16).tobytes()


def _mixed_orientation(slices: list) -> None:
    slices[2].ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]


def _nan_orientation(slices: list) -> None:
    for ds in slices:  # written raw: pydicom warns about NaN in a DS element
        ds[0x00200037] = RawDataElement(Tag(0x00200037), "DS", 24, b"nan\\nan\\nan\\nan\\nan\\nan ", 0, False, True)


def _deep_sequence(c) -> bytes:
    """A series whose first file ends in a sequence nested 20,000 deep (undefined lengths: 32 bytes a level)."""
    slices = dicom_slices(np.round(c.crop * 1000).astype(np.int16), c.affine, slope=0.001)
    files = {f"series/IM{i}": dicom_bytes(ds) for i, ds in enumerate(slices)}
    sequence = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    files["series/IM0"] += (sequence + item) * 20_000 + close * 20_000
    return zip_bytes(files)


def _deflate_bomb(c) -> bytes:
    """One Deflated Explicit VR Little Endian slice whose PixelData inflates to :data:`_DEFLATE_MB` MB."""
    ds = dicom_slices(np.zeros((8, 8, 1), np.int16), c.affine)[0]
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    del ds.PixelData
    plain = dicom_bytes(ds)  # written deflated by pydicom: the meta group, then the deflated dataset
    meta_end = 132 + 12 + struct.unpack("<I", plain[140:144])[0]  # preamble, DICM, (0002,0000) group length
    body = zlib.decompress(plain[meta_end:], -zlib.MAX_WBITS)
    size = _DEFLATE_MB * 1024**2
    deflater = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)  # 2.7 MB; level 9 (600 kB) took 3 s more
    out = [plain[:meta_end], deflater.compress(body + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, size))]
    chunk = bytes(1024**2)
    out += [deflater.compress(chunk) for _ in range(_DEFLATE_MB)]
    return b"".join([*out, deflater.flush()])


def _hdf5(build: Callable[[h5py.File], object]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _huge_chunk(handle: h5py.File) -> None:
    """16 × 64 × 64 voxels declared in one 2 GiB gzip chunk (a resizable dataset may have chunks larger than
    itself); nothing is written, since HDF5 would allocate the whole chunk to write one voxel."""
    handle.create_dataset(
        "raw",
        shape=(16, 64, 64),
        maxshape=(None, None, None),
        chunks=(128, 2048, 2048),
        dtype=np.float32,
        compression="gzip",
    )


def _spacing_attr(value) -> Callable[[h5py.File], None]:
    def build(handle: h5py.File) -> None:
        dataset = handle.create_dataset("raw", data=np.random.default_rng(0).random((8, 16, 16), np.float32))
        dataset.attrs["element_size_um"] = value

    return build


_COMPOUND = np.array([(1.0, 2)], dtype=[("a", "<f8"), ("b", "<i4")])


def _nifti_float64_512(c) -> bytes:
    """A header declaring 512³ float64 (1 GiB: at the voxel limit, twice the upload limit) and 16 MB of zeros."""
    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, 512))
    header.set_data_dtype(np.float64)
    return gzip.compress(header.binaryblock + b"\x00" * 4 + bytes(16 * 1024**2))


def _mgh_header(dims: tuple[int, int, int], mgh_type: int) -> bytes:
    """An MGH header (big-endian, 284 bytes): version 1, dims, frames 1, type, dof 0, no goodRAS."""
    return (struct.pack(">7i", 1, *dims, 1, mgh_type, 0) + b"\x00" * 256)[:284]


def _mgz_negative(c) -> bytes:
    return gzip.compress(_mgh_header((-512, 512, 4), 3) + bytes(4096))


def _mgz_truncated(c) -> bytes:
    """A crop MGZ cut in half: the gzip stream ends early."""
    img = nib.MGHImage(c.crop.astype(np.float32), c.affine)
    data = gzip.compress(img.to_bytes())
    return data[: len(data) // 2]


def _mgh_short(c) -> bytes:
    """An uncompressed MGH of 512 × 512 × 4 int32 holding a tenth of its voxels (the message once showed
    ``np.int32(512)``)."""
    return _mgh_header((512, 512, 4), 1) + bytes(512 * 512 * 4 * 4 // 10)


def _mha_truncated(c) -> bytes:
    """The crop as an uncompressed MetaImage cut 100 bytes short (once: "No such file or directory")."""
    dims = " ".join(str(n) for n in c.crop.shape)
    header = (
        f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nDimSize = {dims}\n"
        "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    ).encode()
    return header + np.asarray(c.crop, "<f4").tobytes(order="F")[:-100]


_DATA_FILE = r"(separate data file|data file) '/etc/passwd'"

ROUND3_READER_CASES: dict[str, tuple[str, Callable, str | None, dict[str, str]]] = {
    # 2, 3: headers that name local files
    "mha_blank_line_passwd.mha": ("volume", lambda c: MHA_PASSWD, _DATA_FILE, {}),
    "mha_lowercase_data_file.mha": (
        "volume",
        lambda c: MHA_PASSWD.replace(b"\n\n", b"\nelementdatafile = LOCAL\n"),
        "mentions ElementDataFile in an unexpected form",
        {},
    ),
    "nrrd_data_file_past_64k.nrrd": ("volume", _nrrd_far, _DATA_FILE, {}),
    "nrrd_header_over_1mb.nrrd": ("volume", _nrrd_endless, "header runs past 1 MB without the blank line", {}),
    # 8, 9, 10: bombs
    "dicom_deflate_bomb.dcm": (
        "volume",
        _deflate_bomb,
        r"dicom_deflate_bomb.dcm: deflated DICOM data inflate to more than 536,870,912 bytes",
        {},
    ),
    "hdf5_huge_chunk.h5": (
        "volume",
        lambda c: _hdf5(_huge_chunk),
        r"stored in chunks of 2,147,483,648 bytes .* for 262,144 bytes",
        {},
    ),
    "nifti_512_float64.nii.gz": (
        "volume",
        _nifti_float64_512,
        r"voxels take 1,073,741,824 bytes once inflated .* over the 512 MB upload limit",
        {},
    ),
    # 12: DICOM tracebacks
    "dicom_missing_rows.zip": ("volume", lambda c: _series(c, _no_rows), "a slice lacks Rows", {}),
    "dicom_iop_five_values.zip": (
        "volume",
        lambda c: _series(c, _iop_five),
        "ImageOrientationPatient has 5 values",
        {},
    ),
    "dicom_ipp_two_values.zip": ("volume", lambda c: _series(c, _ipp_two), "ImagePositionPatient has 2 values", {}),
    "dicom_frames_not_integer.zip": (
        "volume",
        lambda c: _series(c, _frames_text),
        "NumberOfFrames 'many' is not a non-negative integer",
        {},
    ),
    "dicom_mixed_samples.zip": ("volume", lambda c: _series(c, _mixed_samples), r"SamplesPerPixel 1, 3 \(colour", {}),
    "dicom_deep_sequence.zip": ("volume", _deep_sequence, "series/IM0: sequences nested too deeply", {}),
    # 13: tracebacks elsewhere
    "hdf5_text_spacing.h5": (
        "volume",
        lambda c: _hdf5(_spacing_attr("1,1,1")),
        "spacing attribute 'element_size_um' is not numbers",
        {},
    ),
    "hdf5_compound_spacing.h5": (
        "volume",
        lambda c: _hdf5(_spacing_attr(_COMPOUND)),
        "spacing attribute 'element_size_um' is not numbers",
        {},
    ),
    "mgz_negative_dims.mgz": ("volume", _mgz_negative, r"negative dimension \(shape \(-512, 512, 4\)\)", {}),
    # 14: unclear messages
    "dicom_mixed_orientation.zip": (
        "volume",
        lambda c: _series(c, _mixed_orientation),
        "orientations differ between slices",
        {},
    ),
    "dicom_nan_orientation.zip": (
        "volume",
        lambda c: _series(c, _nan_orientation),
        r"ImageOrientationPatient \[nan, .*\] is not finite",
        {},
    ),
    "mha_truncated.mha": ("volume", _mha_truncated, r"file is truncated: header promises \d+ bytes", {}),
    "mha_no_dimsize.mha": (
        "volume",
        lambda c: b"ObjectType = Image\nNDims = 3\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n" + bytes(256),
        r"unreadable header \(DimSize required and not defined",
        {},
    ),
    "mgz_truncated.mgz": ("volume", _mgz_truncated, r"gzip data is truncated .*expected a complete \.mgz file", {}),
    "mgh_short_int32.mgh": (
        "volume",
        _mgh_short,
        r"truncated: header promises 4194304 bytes of voxels for shape \(512, 512, 4\),",
        {},
    ),
}
