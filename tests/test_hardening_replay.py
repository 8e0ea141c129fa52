"""Issue 20, items 1, 5, 6, 7, 15, 16, 17: a repeated command never deletes or serves what it should not.

Through the CLI (:func:`explorer.cli.main`, in process): the replay of a recorded run obeys the out-folder rules
of a normal run; a changed ``--checkpoint=PATH`` file, a changed detached NRRD/MetaImage data file and an
abbreviated option are never answered from an old record; ``cache info``/``clear`` and the byte budget cover
run records and renders; entries forged without the installation's key are not served; CSV cells that a
spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from explorer import progress
from explorer.cache import integrity
from explorer.cache.store import CHECKSUM, ResultCache
from explorer.cli import analyze_namespace, main
from explorer.io.files import detached_data_files, file_sha256
from explorer.io.volume import load_volume
from explorer.models.checkpoints import list_zoo
from explorer.reporting import export, replay

SHAPE = (32, 32, 12)
FORGER_KEY = b"not the installation's key, 32 b"


def _volume(seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)
    data[8:24, 8:24, 3:9] += 3.0
    return data


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small volume, a checkpoint copy, and a cache (with its key) holding one recorded run into ``r1``."""
    root = tmp_path_factory.mktemp("shared")
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), root / "scan.nii.gz")
    shutil.copy(list_zoo()[0], root / "model.safetensors")
    env = {"EXPLORER_CACHE_DIR": str(root / "cache"), "EXPLORER_CACHE_KEY_FILE": str(root / "cache.key")}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        assert main(_args(root, root / "r1")) == 0
    return {"root": root, **{k: Path(v) for k, v in env.items()}}


def _args(root: Path, out: Path, checkpoint: Path | None = None) -> list[str]:
    return [
        "analyze",
        str(root / "scan.nii.gz"),
        "--checkpoint",
        str(checkpoint or root / "model.safetensors"),
        "--no-zflip",
        "--formats",
        "none",
        "--out",
        str(out),
    ]


def _use(shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test at the shared cache (its record and results) and its key; returns the shared folder."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(shared["EXPLORER_CACHE_DIR"]))
    monkeypatch.setenv("EXPLORER_CACHE_KEY_FILE", str(shared["EXPLORER_CACHE_KEY_FILE"]))
    return shared["root"]


def _run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- 1: data loss


def test_the_replay_refuses_a_folder_of_user_files_exactly_as_a_run_does(shared, monkeypatch, capsys, tmp_path):
    root = _use(shared, monkeypatch)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("four years of work")
    code, out, err = _run(_args(root, precious), capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "holds files that are not explorer outputs" in err
    assert _tree(precious) == {"thesis.txt": b"four years of work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]  # nothing set aside beside it
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path.parent / f"{tmp_path.name}-nocache"))  # no record
    assert _run(_args(root, precious), capsys) == (2, "", err)  # the run itself says exactly the same
    shutil.rmtree(tmp_path.parent / f"{tmp_path.name}-nocache", ignore_errors=True)


def test_the_replay_keeps_the_users_files_in_an_earlier_output_folder(shared, monkeypatch, capsys, tmp_path):
    root = _use(shared, monkeypatch)
    out = tmp_path / "out"
    shutil.copytree(root / "r1", out)
    (out / "notes.txt").write_text("mine")
    (out / "drafts").mkdir()
    (out / "drafts" / "fig.svg").write_text("<svg/>")
    (out / "shares.csv").write_text("stale")
    code, printed, err = _run(_args(root, out), capsys)
    assert code == 0 and "the record of an identical earlier run" in printed and err == ""
    assert (out / "notes.txt").read_text() == "mine" and (out / "drafts" / "fig.svg").read_text() == "<svg/>"
    assert (out / "shares.csv").read_bytes() == (root / "r1" / "shares.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    fresh = tmp_path / "fresh"  # the record holds the run's own files only, never a user's notes
    assert _run(_args(root, fresh), capsys)[0] == 0
    assert _tree(fresh) == _tree(root / "r1")


@pytest.mark.parametrize("kind", ["file", "link to an empty folder", "link to an output folder"])
def test_a_file_or_a_symlink_at_out_is_refused_and_left_alone(shared, monkeypatch, capsys, tmp_path, kind):
    root = _use(shared, monkeypatch)
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("not a folder")
    else:
        target = tmp_path / "target"
        shutil.copytree(root / "r1", target) if "output" in kind else target.mkdir()
        out.symlink_to(target, target_is_directory=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, printed, err = _run(_args(root, out), capsys)
    assert code == 2 and printed == "" and len(err.splitlines()) == 1
    assert ("is a symbolic link" if "link" in kind else "exists and is not a directory") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no hidden .out.<pid>.old
    assert out.read_text() == "not a folder" if kind == "file" else out.is_symlink()


# ------------------------------------------------------------------------------- 5, 7: the record's key


def test_a_changed_checkpoint_given_as_opt_equals_path_is_not_served(shared, monkeypatch, capsys, tmp_path):
    root = _use(shared, monkeypatch)
    model = tmp_path / "model.safetensors"
    shutil.copy(list_zoo()[0], model)
    args = ["analyze", str(root / "scan.nii.gz"), f"--checkpoint={model}", "--no-zflip", "--formats", "none"]
    assert _run([*args, f"--out={tmp_path / 'a'}"], capsys)[0] == 0
    assert "identical earlier run" in _run([*args, f"--out={tmp_path / 'b'}"], capsys)[1]
    shutil.copy(list_zoo()[-1], model)  # another network under the same name
    code, second, _ = _run([*args, f"--out={tmp_path / 'c'}"], capsys)
    assert code == 0 and "identical earlier run" not in second
    ai = [
        json.loads((tmp_path / d / "summary.json").read_text())["models"]["model"]["asymmetry_index"]["mean"]
        for d in ("a", "c")
    ]
    assert ai[0] != pytest.approx(ai[1], abs=1e-3)


def test_the_key_is_the_parsed_command_with_the_content_of_every_file_it_names(tmp_path):
    for name in ("v.nii.gz", "c.safetensors", "m.nii.gz"):
        (tmp_path / name).write_bytes(name.encode())
    v, c, m = (str(tmp_path / n) for n in ("v.nii.gz", "c.safetensors", "m.nii.gz"))
    spelled = [
        analyze_namespace([v, "--checkpoint", c, "--mask", m, "--out", "x"]),
        analyze_namespace([v, f"--checkpoint={c}", f"--mask={m}", "--out=y"]),
        analyze_namespace([v, "--mask", m, "--checkpoint", c]),
    ]
    keys = {replay.run_key(ns) for ns in spelled}
    assert len(keys) == 1  # --out is not part of the key; the spelling of the options is not either
    (tmp_path / "m.nii.gz").write_bytes(b"another mask")
    assert replay.run_key(spelled[1]) not in keys
    assert analyze_namespace([v, "--checkpoint", c, "--ou", "elsewhere"]) is None  # not a prefix of --out


def test_an_abbreviated_option_is_refused_not_read_as_another(shared, monkeypatch, capsys, tmp_path):
    root = _use(shared, monkeypatch)
    monkeypatch.chdir(tmp_path)
    args = _args(root, tmp_path / "unused")[:-2]
    assert _run([*args, "--out", "explorer-out"], capsys)[0] == 0  # the default folder, recorded
    shutil.rmtree(tmp_path / "explorer-out")
    code, printed, err = _run([*args, "--ou", str(tmp_path / "mine")], capsys)
    assert code == 2 and printed == "" and len(err.splitlines()) == 1 and "unrecognized arguments: --ou" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    for command, message in (
        (["cohort", "x.csv", "--checkpoint", "c", "--ou", "d"], "unrecognized arguments: --ou"),
        (
            ["train", "--volume", "v", "--strategy", "random", "--ou", "c.safetensors"],
            "the following arguments are required: --out",
        ),
    ):  # not taken for --out
        code, _, err = _run(command, capsys)
        assert code == 2 and message in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------- 6: detached NRRD / MetaImage data

_NHDR = """NRRD0004
type: float
dimension: 3
sizes: {x} {y} {z}
space: left-posterior-superior
space directions: (1,0,0) (0,1,0) (0,0,1)
space origin: (0,0,0)
encoding: raw
endian: little
data file: {data}
"""
_MHD = """ObjectType = Image
NDims = 3
DimSize = {x} {y} {z}
ElementType = MET_FLOAT
ElementSpacing = 1 1 1
ElementByteOrderMSB = False
ElementDataFile = {data}
"""


def _detached(folder: Path, header: str, data: np.ndarray) -> Path:
    folder.mkdir(exist_ok=True)
    template = _NHDR if header.endswith(".nhdr") else _MHD
    (folder / header).write_text(template.format(x=SHAPE[0], y=SHAPE[1], z=SHAPE[2], data="voxels.raw"))
    (folder / "voxels.raw").write_bytes(np.asfortranarray(data, dtype="<f4").tobytes(order="F"))
    return folder / header


@pytest.mark.parametrize("header", ["scan.nhdr", "scan.mhd"])
def test_new_detached_voxels_under_an_old_header_are_a_new_volume(tmp_path, header):
    path = _detached(tmp_path, header, _volume(0))
    first, header_hash = load_volume(path), file_sha256(path)
    assert np.allclose(first.data.sum(), _volume(0).sum(), rtol=1e-5)
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    args = analyze_namespace([str(path), "--checkpoint", str(tmp_path / "model.safetensors")])
    key = replay.run_key(args)
    _detached(tmp_path, header, _volume(1))  # same header bytes, other voxels
    second = load_volume(path)
    assert file_sha256(path) == header_hash and first.sha256 != second.sha256  # the result cache's identity
    assert np.allclose(second.data.sum(), _volume(1).sum(), rtol=1e-5)
    assert replay.run_key(args) != key  # the run record's


def test_a_changed_detached_data_file_is_recomputed_through_the_cli(monkeypatch, capsys, tmp_path):
    path = _detached(tmp_path / "in", "scan.nhdr", _volume(0))
    args = ["analyze", str(path), "--checkpoint", str(list_zoo()[0]), "--no-zflip", "--formats", "none"]
    assert _run([*args, "--out", str(tmp_path / "a")], capsys)[0] == 0
    _detached(tmp_path / "in", "scan.nhdr", _volume(1))
    code, printed, _ = _run([*args, "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "identical earlier run" not in printed
    assert (tmp_path / "a" / "shares.csv").read_bytes() != (tmp_path / "b" / "shares.csv").read_bytes()


def test_only_data_files_beside_the_header_are_ever_looked_at(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "secret.raw").write_bytes(b"x")
    (tmp_path / "sub" / "a001.raw").write_bytes(b"1")
    (tmp_path / "sub" / "a002.raw").write_bytes(b"2")
    for value in ("../secret.raw", "/etc/passwd", "LIST", "LOCAL", "..", "sub/../../secret.raw"):
        (tmp_path / "sub" / "h.nhdr").write_text(f"NRRD0004\ndata file: {value}\n")
        assert detached_data_files(tmp_path / "sub" / "h.nhdr") == [], value
    (tmp_path / "sub" / "h.nhdr").write_text("NRRD0004\ndata file: a%03d.raw 1 2 1 2\n")
    assert [p.name for p in detached_data_files(tmp_path / "sub" / "h.nhdr")] == ["a001.raw", "a002.raw"]
    (tmp_path / "sub" / "h.nhdr").write_text("NRRD0004\nencoding: raw\n\ndata file: a001.raw\n")  # attached data
    assert detached_data_files(tmp_path / "sub" / "h.nhdr") == []


# ------------------------------------------------------------------------ 15: cache info, clear, budget


def _cache_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "cache.lock")


def test_cache_info_and_clear_cover_run_records_and_renders(monkeypatch, capsys, tmp_path):
    root = Path(os.environ["EXPLORER_CACHE_DIR"])
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), tmp_path / "scan.nii.gz")
    shutil.copy(list_zoo()[0], tmp_path / "model.safetensors")
    assert _run(_args(tmp_path, tmp_path / "a"), capsys)[0] == 0
    export._store_render("ab" * 32, "png", b"\x89PNG" + bytes(1000))
    code, printed, _ = _run(["cache", "info"], capsys)
    entries = int(printed.split(": ")[1].split()[0])
    assert code == 0 and "1 run records, 1 figure renders" in printed and entries >= 3  # + the model result
    assert f"{_cache_bytes(root) / 1024**2:,.1f} MB" in printed  # every byte of the folder is counted
    code, printed, _ = _run(["cache", "clear"], capsys)
    assert code == 0 and f"removed {entries} entries" in printed and _cache_bytes(root) == 0
    assert export._cached_render("ab" * 32, "png") is None
    code, printed, _ = _run(_args(tmp_path, tmp_path / "b"), capsys)
    assert code == 0 and "identical earlier run" not in printed


def test_the_byte_budget_counts_run_records_and_renders(monkeypatch, capsys, tmp_path):
    root = Path(os.environ["EXPLORER_CACHE_DIR"])
    monkeypatch.setenv("EXPLORER_CACHE_MAX_MB", "0.2")  # less than one model result with its record
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), tmp_path / "scan.nii.gz")
    shutil.copy(list_zoo()[0], tmp_path / "model.safetensors")
    export._store_render("cd" * 32, "png", bytes(150_000))
    assert _cache_bytes(root) == 150_000
    assert _run(_args(tmp_path, tmp_path / "a"), capsys)[0] == 0
    assert _cache_bytes(root) <= 0.2 * 1024**2  # was 4.7 MB: the record (plotly.min.js…) and render uncounted
    assert export._cached_render("cd" * 32, "png") is None  # the least recently used went first
    assert f"{_cache_bytes(root) / 1024**2:,.1f} MB of a budget" in _run(["cache", "info"], capsys)[1]


# ---------------------------------------------------------------------------- 16: forged entries


def _forge(raw: bytes) -> str:
    return hmac.new(FORGER_KEY, raw, hashlib.sha256).hexdigest()


def test_a_consistently_forged_result_entry_is_not_served(tmp_path):
    cache = ResultCache(directory=tmp_path / "cache")
    cache.put("k" * 64, {"masses": np.arange(4.0)}, {"ai": 0.293})
    folder = cache.entry_dir("k" * 64)
    np.savez(folder / "arrays.npz", masses=np.full(4, 9.0))
    record = json.loads((folder / "meta.json").read_text())
    record["files"]["arrays.npz"] = file_sha256(folder / "arrays.npz")
    record["meta"]["ai"] = -0.042
    raw = json.dumps(record).encode()
    (folder / "meta.json").write_bytes(raw)
    (folder / CHECKSUM).write_text(_forge(raw))  # every checksum consistent, signed with another key
    (folder / "meta.json.sha256").write_text(hashlib.sha256(raw).hexdigest())  # the old, keyless scheme
    fresh = ResultCache(directory=tmp_path / "cache")
    assert fresh.get("k" * 64) is None and fresh.stats.corrupt == 1 and not folder.exists()
    cache.clear_memory()
    cache.put("k" * 64, {"masses": np.arange(4.0)}, {"ai": 0.293})
    assert ResultCache(directory=tmp_path / "cache").get("k" * 64).meta == {"ai": 0.293}  # genuine: served


def test_a_consistently_forged_run_record_is_not_replayed(monkeypatch, capsys, tmp_path):
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), tmp_path / "scan.nii.gz")
    shutil.copy(list_zoo()[0], tmp_path / "model.safetensors")
    code, genuine, _ = _run(_args(tmp_path, tmp_path / "a"), capsys)
    assert code == 0
    [record] = (Path(os.environ["EXPLORER_CACHE_DIR"]) / "runs").iterdir()
    summary = json.loads((record / "out" / "summary.json").read_text())
    summary["models"]["model"]["asymmetry_index"]["mean"] = 0.999
    (record / "out" / "summary.json").write_text(json.dumps(summary))
    manifest = json.loads((record / replay.MANIFEST).read_text())
    manifest["out_sha256"] = replay._folder_hash(record / "out")
    manifest["lines"] = ["model: AI 0.999 (forged)"]
    raw = json.dumps(manifest).encode()
    (record / replay.MANIFEST).write_bytes(raw)
    (record / replay.SIGNATURE).write_text(_forge(raw))
    code, printed, _ = _run(_args(tmp_path, tmp_path / "b"), capsys)
    assert code == 0 and "AI 0.999" not in printed and "identical earlier run" not in printed
    assert printed.splitlines()[0] == genuine.splitlines()[0]
    assert (
        json.loads((tmp_path / "b" / "summary.json").read_text())["models"]["model"]["asymmetry_index"]["mean"] != 0.999
    )


def test_a_forged_render_is_not_served(tmp_path):
    key = "ef" * 32
    folder = Path(os.environ["EXPLORER_CACHE_DIR"]) / "renders" / key[:2]
    folder.mkdir(parents=True)
    forged = b"\x89PNG forged"
    (folder / f"{key}-{_forge(export._render_message(key, forged))}.png").write_bytes(forged)
    (folder / f"{key}-{hashlib.sha256(forged).hexdigest()[:16]}.png").write_bytes(forged)  # the old scheme
    assert export._cached_render(key, "png") is None and list(folder.iterdir()) == []
    export._store_render(key, "png", b"\x89PNG genuine")
    assert export._cached_render(key, "png") == b"\x89PNG genuine"


def test_the_key_is_made_once_outside_the_cache_private_to_its_owner(tmp_path, monkeypatch):
    path = tmp_path / "config" / "explorer" / "cache.key"
    monkeypatch.delenv("EXPLORER_CACHE_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert integrity.key_path() == path and not path.exists()
    tag = integrity.sign(b"entry")
    assert path.stat().st_mode & 0o777 == 0o600 and len(path.read_bytes()) == integrity.KEY_BYTES
    assert integrity.verify(b"entry", tag) and not integrity.verify(b"entry!", tag)
    assert integrity.sign(b"entry") == hmac.new(path.read_bytes(), b"entry", hashlib.sha256).hexdigest()
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny")
    monkeypatch.setenv("EXPLORER_CACHE_KEY_FILE", str(short))
    cache = ResultCache(directory=tmp_path / "cache")  # no usable key: nothing is cached on disk
    assert not cache.disk and "short.key" in cache.warning and not integrity.verify(b"entry", tag)


# -------------------------------------------------------------------------------- 17: CSV injection

HOSTILE = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1", "\r=1"]


def test_formula_cells_are_neutralised_and_numbers_kept():
    table = pd.DataFrame({"name": [*HOSTILE, "-0.3", "plain"], "value": [-0.3, 1, 2, 3, 4, 5, -1e-9, 7]})
    back = pd.read_csv(pd.io.common.BytesIO(export.table_csv(table, float_format=None)), keep_default_na=False)
    assert list(back["name"]) == [*("'" + h.replace("\r", "\n") for h in HOSTILE), "-0.3", "plain"]
    assert back["value"].dtype == np.float64 and list(back["value"]) == [-0.3, 1, 2, 3, 4, 5, -1e-9, 7]


def test_model_and_subject_names_reach_no_csv_as_formulas(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)  # stderr is not a terminal here: plain lines
    nib.save(nib.Nifti1Image(_volume(), np.eye(4)), tmp_path / "scan.nii.gz")
    model = tmp_path / "=HYPERLINK(evil).safetensors"
    shutil.copy(list_zoo()[0], model)
    code, _, err = _run(_args(tmp_path, tmp_path / "a", checkpoint=model), capsys)
    assert code == 0 and err.startswith("analyze: ") and "\r" not in err and "%" in err
    for name in ("shares.csv", "statistics.csv", "diagnostics.csv"):
        text = (tmp_path / "a" / name).read_text()
        assert "'=HYPERLINK(evil)" in text and ",=HYPERLINK" not in text and not text.startswith("="), name
    shares = pd.read_csv(tmp_path / "a" / "shares.csv")
    assert shares["offset"].tolist()[:3] == [-1, 0, 1] and pd.api.types.is_integer_dtype(shares["offset"])
    assert pd.api.types.is_float_dtype(pd.read_csv(tmp_path / "a" / "statistics.csv")["AI mean"])
    rows = [{"subject": s, "volume": str(tmp_path / "scan.nii.gz")} for s in HOSTILE[:4]]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    code, _, err = _run(
        ["cohort", str(tmp_path / "manifest.csv"), "--checkpoint", str(model), "--out", str(tmp_path / "c")], capsys
    )
    assert code == 0 and "cohort: " in err and "pairs" in err
    cohort = pd.read_csv(tmp_path / "c" / "cohort.csv", keep_default_na=False)
    assert sorted(cohort["subject"]) == sorted("'" + s for s in HOSTILE[:4])
    assert set(cohort["model"]) == {"'=HYPERLINK(evil)"}
    assert pd.api.types.is_float_dtype(cohort["asymmetry_index"])
