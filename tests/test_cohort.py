"""explorer cohort on the simulated sample cohort and the shipped checkpoints: executors, resume, bad rows,
manifests, the output contract."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from explorer.cli import main
from explorer.cohort import Executor, read_manifest, run_cohort
from explorer.cohort.outputs import write_cohort
from explorer.config import SAMPLE_DIR
from explorer.errors import InputError
from explorer.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
COHORT = SAMPLE_DIR / "cohort"
CKPTS = [str(ROOT / "models" / f"unet-mobilenet_v2-{s}-s0.safetensors") for s in ("imagenet", "imagenet-uniform")]
#: Saliency without the reversed windows: its known answers (imagenet's first-conv weighting, AI > 0.2 on every
#: volume) pin the statistics; the default's split and endpoint are tested in
#: test_bad_rows_are_reported_and_the_rest_completes.
SALIENCY = RunSpec(method="saliency", zflip=False)
NUMBERS = [
    "subject",
    "model",
    "strategy",
    "seed",
    "n_slices",
    "asymmetry_index",
    "ai_ci_low",
    "ai_ci_high",
    "block_length",
    "dice",
    "share_-1",
    "share_0",
    "share_1",
]


def _manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["subject,volume,mask,split"] + [f"{s},{v},{m},test" for s, v, m in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _subjects(n: int, folder: Path = COHORT) -> list[tuple[str, str, str]]:
    """The first ``n`` sample-cohort subjects as manifest rows, read from ``folder`` (the full volumes, or the
    20-slice crops of conftest's ``small_cohort``)."""
    return [
        (f"sub-{i:02d}", str(folder / f"sub-{i:02d}_T1w.nii.gz"), str(folder / f"sub-{i:02d}_gm_mask.nii.gz"))
        for i in range(1, n + 1)
    ]


@pytest.fixture(scope="module")
def crops(small_cohort: Path) -> Path:
    """The folder of sub-01 … sub-03 cropped to 20 axial slices (conftest's ``small_cohort``). The executor,
    resume and bad-row tests run on these: what they check (same numbers on Ray, pairs resumed from the cache,
    a bad row beside a good one, imagenet's first-conv weighting) does not depend on the number of slices, and
    a pair costs about a quarter of a full volume's (imagenet's AI is 0.27 on each crop, 0.29 on the full sub-01)."""
    return small_cohort.parent


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, crops: Path):
    """Three volumes (20-slice crops) × two checkpoints, computed locally into a fresh cache, and written.
    Saliency: the known answers below (imagenet's AI above 0.2 and above imagenet-uniform's on every volume) are
    saliency's; on the crops imagenet's AI is 0.268-0.272 per volume, imagenet-uniform's below 0.001."""
    tmp = tmp_path_factory.mktemp("cohort")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPLORER_CACHE_DIR", str(tmp / "cache"))
        cohort = run_cohort(_manifest(tmp / "m.csv", _subjects(3, crops)), CKPTS, SALIENCY)
    return cohort, write_cohort(cohort, tmp / "out")


@pytest.mark.slow  # Ray start-up / a killed child process: minutes on a 2-core CPU
def test_local_and_ray_give_the_same_per_volume_numbers(local_run, crops: Path, tmp_path: Path) -> None:
    """Same numbers up to float32 summation order: a Ray task runs torch on one thread (num_cpus=1), the local
    run on all cores, and the convolutions' reductions split differently (CI saw 3e-5 relative on one AI).
    Two Ray CPUs for three volumes: the tasks finish out of manifest order, and the rows still line up."""
    cohort, _ = local_run
    assert cohort.from_cache == 0 and len(cohort.rows) == 6 and not cohort.errors
    ray_cohort = run_cohort(
        _manifest(tmp_path / "m.csv", _subjects(3, crops)), CKPTS, SALIENCY, executor=Executor("ray", workers=2)
    )
    assert ray_cohort.from_cache == 0  # a fresh cache: the Ray workers computed every pair themselves
    pd.testing.assert_frame_equal(cohort.rows[NUMBERS], ray_cohort.rows[NUMBERS], rtol=1e-4, atol=1e-6)
    for name, group in cohort.summary["groups"].items():
        assert ray_cohort.summary["groups"][name]["asymmetry_index"]["mean"] == pytest.approx(
            group["asymmetry_index"]["mean"], rel=1e-4, abs=1e-6
        )


def test_outputs_follow_the_contract(local_run) -> None:
    cohort, written = local_run
    table = pd.read_csv(written["csv"])
    assert list(table.columns[:20]) == [
        "subject",
        "volume",
        "model",
        "strategy",
        "seed",
        "n_slices",
        "channel_asymmetry",
        "ca_ci_low",
        "ca_ci_high",
        "anatomy_asymmetry",
        "aa_ci_low",
        "aa_ci_high",
        "asymmetry_index",
        "ai_ci_low",
        "ai_ci_high",
        "block_length",
        "dice",
        "channel_asymmetry_mass_weighted",
        "anatomy_asymmetry_mass_weighted",
        "asymmetry_index_mass_weighted",
    ]
    assert table["channel_asymmetry"].isna().all()  # no reversed windows: the split is not computed…
    assert {"share_-1", "share_0", "share_1", "error", "split"} <= set(table.columns)
    np.testing.assert_allclose(table[["share_-1", "share_0", "share_1"]].sum(axis=1), 1.0, atol=1e-9)
    assert (table["ai_ci_low"] <= table["asymmetry_index"]).all() and (table["block_length"] >= 1).all()
    summary = json.loads(written["summary"].read_text())
    assert set(summary) >= {"groups", "comparisons", "equivalence", "inputs"}
    assert summary["endpoint"] == "asymmetry_index"  # …and the statistics say which quantity they are on
    for name, g in summary["groups"].items():
        assert set(g) >= {"strategy", "n_models", "n_volumes", "asymmetry_index", "mean_share", "dice"}
        assert g["n_models"] == 1 and g["n_volumes"] == 3
        lo, hi = g["asymmetry_index"]["ci95"]
        assert lo <= g["asymmetry_index"]["mean"] <= hi
        assert g["asymmetry_index"]["mean"] == pytest.approx(
            table.loc[table["strategy"] == name, "asymmetry_index"].mean()
        )
    (comp,) = summary["comparisons"]
    assert set(comp) >= {"a", "b", "test", "p", "p_min", "p_holm", "effect_size", "ci95"}
    assert comp["effect_size"] == 1.0 and comp["p"] == pytest.approx(0.25)  # 3 of 3 volumes: imagenet AI higher
    assert comp["p_min"] == pytest.approx(0.25)  # … which is the smallest p 3 volumes allow
    assert summary["groups"]["imagenet"]["asymmetry_index"]["mean"] > 0.2
    assert "one model" in summary["groups"]["imagenet"]["asymmetry_index"]["method"]
    assert summary["equivalence"]["imagenet-uniform"]["margin"] == 0.05
    assert summary["equivalence_margin"]["rationale"].startswith("fixed in advance")
    assert summary["interval_method"].startswith("t-interval over model means")
    assert summary["family"]["size"] == 3  # 1 comparison + 2 equivalence tests
    assert not summary["equivalence"]["imagenet"]["equivalent"]
    inputs = summary["inputs"]
    assert inputs["executor"] == "local" and inputs["margin"] == 0.05 and len(inputs["volumes"]) == 3
    assert table["asymmetry_index_mass_weighted"].between(-1, 1).all()
    assert all(v["sha256"] and v["mask_sha256"] for v in inputs["volumes"].values())
    assert {c["seed"] for c in inputs["checkpoints"].values()} == {0}
    assert {p.name for p in written["figures"].glob("*.html")} == {
        "cohort_forest.html",
        "cohort_paired.html",
        "cohort_shares.html",
    }


@pytest.mark.slow  # Ray start-up / a killed child process: minutes on a 2-core CPU
def test_killed_run_resumes_from_the_cache(
    crops: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A real ``explorer cohort`` process SIGKILLed as soon as its first pair is in the cache writes nothing;
    the rerun takes exactly the finished pairs from the cache. Two volumes × two checkpoints, the default analysis
    on 20-slice crops: a pair takes a second or more, so the kill (polled every 50 ms) lands long before the last
    pair."""
    manifest = _manifest(tmp_path / "m.csv", _subjects(2, crops))
    cache = tmp_path / "cache"

    def cached() -> int:
        """Finished cache entries: an entry is written under a hidden temporary name, then renamed into place."""
        return sum(not p.parent.name.startswith(".") for p in cache.glob("*/*/meta.json"))

    env = {**os.environ, "EXPLORER_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "explorer.cli",
        "cohort",
        str(manifest),
        "--checkpoint",
        CKPTS[0],
        "--checkpoint",
        CKPTS[1],
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 300
    while not cached() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = cached()
    assert 1 <= done < 4 and not (tmp_path / "out").exists()  # killed halfway: nothing written
    # The rerun needs no process of its own (the kill did): the same command, in this one, on the same cache.
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(cache))
    assert main(command[3:]) == 0
    assert f"({done} of 4 pairs from the cache)" in capsys.readouterr().out


def test_bad_rows_are_reported_and_the_rest_completes(
    crops: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The good row (sub-01 cropped to 20 slices, the default analysis) completes beside an unreadable volume
    and a mask of another subject's grid (on the crop the channel + anatomy split meets the AI to 1e-5)."""
    (tmp_path / "broken.nii.gz").write_bytes(b"not a volume")
    rows = [
        _subjects(1, crops)[0],
        ("broken", str(tmp_path / "broken.nii.gz"), ""),
        ("wrong-mask", str(COHORT / "sub-02_T1w.nii.gz"), str(COHORT / "sub-01_gm_mask.nii.gz")),
    ]
    manifest = _manifest(tmp_path / "m.csv", rows)
    assert main(["cohort", str(manifest), "--checkpoint", CKPTS[0], "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 pairs failed" in out
    assert "imagenet: not shown to remove the asymmetry" in out and "min attainable" in out
    table = pd.read_csv(tmp_path / "out" / "cohort.csv").set_index("subject")
    assert pd.isna(table.loc["sub-01", "error"])
    ai, split = table.loc["sub-01", "asymmetry_index"], table.loc["sub-01", ["channel_asymmetry", "anatomy_asymmetry"]]
    assert np.isfinite(split).all() and abs(split.sum() - ai) < 0.05  # the default computes the split…
    summary = json.loads((tmp_path / "out" / "cohort_summary.json").read_text())
    assert summary["endpoint"] == "channel_asymmetry"  # …and uses it as the primary endpoint
    assert "broken.nii.gz" in table.loc["broken", "error"]
    assert "shape" in table.loc["wrong-mask", "error"]
    assert pd.isna(table.loc["broken", "asymmetry_index"])


def test_fail_fast_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "broken.nii.gz").write_bytes(b"not a volume")
    manifest = _manifest(tmp_path / "m.csv", [("broken", str(tmp_path / "broken.nii.gz"), ""), *_subjects(1)])
    code = main(["cohort", str(manifest), "--checkpoint", CKPTS[0], "--out", str(tmp_path / "out"), "--fail-fast"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "broken" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("subject,image\na,x.nii.gz\n", "row 1: no 'volume' column"),
        ("subject,volume\na,x.nii.gz\nb,\n", "row 3: empty volume cell"),
        ("subject,volume\na,x.nii.gz\na,y.nii.gz\n", "row 3: subject 'a' repeats row 2"),
        ("volume\nx.nii.gz,extra\n", "row 2: more cells"),
        ("subject,volume\n", "no rows"),
    ],
)
def test_manifest_errors_name_the_file_and_row(tmp_path: Path, text: str, found: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=found) as info:
        read_manifest(path)
    assert info.value.source == str(path)


def test_manifest_paths_are_relative_and_confined_to_a_root(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "m.csv"
    path.write_text("volume,mask,site\nscans/a.nii.gz,,x\n")
    (entry,) = read_manifest(path)
    assert entry.volume == tmp_path / "data" / "scans" / "a.nii.gz" and entry.mask is None
    assert entry.subject == "a" and entry.extra == {"site": "x"}
    path.write_text("volume\n../outside.nii.gz\n")
    with pytest.raises(InputError, match="outside"):
        read_manifest(path, root=tmp_path / "data")


def test_folder_manifest_pairs_masks_by_name(tmp_path: Path) -> None:
    for name in ("sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"):
        shutil.copy(COHORT / name, tmp_path / name)
    shutil.copy(COHORT / "sub-01_gm_mask.nii.gz", tmp_path / "sub-01_T1w_mask.nii.gz")
    (tmp_path / "notes.txt").write_text("ignored")
    entries = read_manifest(tmp_path)
    assert [(e.subject, e.mask.name if e.mask else None) for e in entries] == [
        ("sub-01_T1w", "sub-01_T1w_mask.nii.gz"),
        ("sub-02_T1w", None),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no volume"):
        read_manifest(tmp_path / "empty")


def test_held_out_follows_the_recorded_subject_split() -> None:
    """Dice counts as held-out only on subjects (and volume contents) the checkpoint never trained on."""
    from explorer.cohort import _held_out

    training = {
        "split": {
            "train": [{"subject": "sub-01", "volume_sha256": "aa"}],
            "test": [{"subject": "sub-03", "volume_sha256": "cc"}],
        }
    }
    assert not _held_out(training, "sub-01", "aa")
    assert not _held_out(training, "renamed", "aa")  # the same volume under another subject id
    assert _held_out(training, "sub-03", "cc")
    assert not _held_out({"volume": {"sha256": "bb"}}, "x", "bb")  # single-volume training (explorer train --volume)
    # an early-stopping validation subject chose the kept epoch: not held out either
    stopped = {"split": {**training["split"], "val": [{"subject": "sub-02", "volume_sha256": "dd"}]}}
    assert not _held_out(stopped, "sub-02", "dd") and _held_out(stopped, "sub-03", "cc")


def test_a_cohort_output_folder_is_replaced_by_a_rerun_and_a_foreign_one_refused(tmp_path) -> None:
    from explorer.reporting.outputs import check_out_dir

    out = tmp_path / "cohort"
    out.mkdir()
    (out / "cohort_summary.json").write_text("{}")
    (out / "cohort.csv").write_text("x")
    assert check_out_dir(out, marker="cohort_summary.json") == out  # an earlier cohort output: replaced
    with pytest.raises(InputError, match="not explorer outputs"):
        check_out_dir(out)  # but not where analyze would write
