"""Output folders: checked before work, swapped in by one rename, stale temporaries cleaned, unique map names."""

from __future__ import annotations

import dataclasses
import os

import pytest

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.analysis import Analysis, analyze
from explorer.cli import main
from explorer.config import SAMPLE_DIR
from explorer.errors import InputError
from explorer.models.checkpoints import list_zoo, load_checkpoint
from explorer.reporting.outputs import check_out_dir, map_stems, write_outputs
from explorer.spec import RunSpec

VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"


@pytest.fixture(scope="module")
def twins() -> Analysis:
    """One checkpoint under two names that sanitise to the same file name."""
    path = list_zoo()[0]
    ckpts = [load_checkpoint(path, name="a b"), load_checkpoint(path, name="a_b")]
    return analyze(VOLUME, ckpts, RunSpec(target="all", keep_maps=True, zflip=False), cache=False)


def test_map_names_are_unique(twins, tmp_path):
    stems = map_stems(["a b", "a_b", "a/b", "plain"])
    assert len(set(stems.values())) == 4 and stems["a_b"] == "a_b" and stems["plain"] == "plain"
    written = write_outputs(twins, tmp_path / "out", figures=False)
    maps = sorted(p.name for p in (tmp_path / "out" / "maps").iterdir())
    assert len(maps) == 6 and written["map:a b"] != written["map:a_b"]  # attribution, label, probability each
    assert len({p.split("_attribution")[0] for p in maps if "_attribution" in p}) == 2
    assert written["map:a_b"].name == "a_b_attribution.nii.gz"


def test_a_rerun_replaces_the_folder_whole_and_keeps_the_users_files(twins, tmp_path):
    out = tmp_path / "out"
    write_outputs(twins, out, figures=False)
    (out / "notes.txt").write_text("mine")
    without_maps = dataclasses.replace(twins, spec=dataclasses.replace(twins.spec, keep_maps=False))
    write_outputs(without_maps, out, figures=False)  # no maps this time: the old maps must not linger
    assert not (out / "maps").exists() and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_swap_leaves_the_old_outputs_whole(twins, tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_outputs(twins, out, figures=False)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    real, calls = os.rename, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # old folder set aside; the new one fails to move in
            raise OSError("simulated crash")
        return real(src, dst)

    monkeypatch.setattr("explorer.outdir.os.rename", failing)  # swap_into renames
    with pytest.raises(OSError, match="simulated crash"):
        write_outputs(twins, out, figures=False)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_of_dead_runs_are_removed(twins, tmp_path):
    dead = tmp_path / ".out.999999999.abc.tmp"  # no process has this id
    alive = tmp_path / f".out.{os.getppid()}.xyz.tmp"  # a live process: another run may be writing it
    dead.mkdir()
    alive.mkdir()
    write_outputs(twins, tmp_path / "out", figures=False)
    assert not dead.exists() and alive.exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda t: (t / "f").write_text("x") and t / "f" / "out", "is a file; expected an output path under a folder"),
        (lambda t: (t / "f").write_text("x") and t / "f", "exists and is not a directory"),
        (
            lambda t: (t / "d").mkdir() or (t / "d" / "x.txt").write_text("x") and t / "d",
            "holds files that are not explorer outputs",
        ),
    ],
)
def test_bad_out_is_refused_before_any_work(tmp_path, monkeypatch, capsys, setup, message):
    out = setup(tmp_path)
    with pytest.raises(InputError, match=message):
        check_out_dir(out)

    def never(*args, **kwargs):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr("explorer.analysis.analyze", never)
    assert main(["analyze", str(VOLUME), "--checkpoint", str(list_zoo()[0]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    with pytest.raises(InputError, match="permission denied"):
        check_out_dir(parent / "out")
