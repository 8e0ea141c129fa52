"""`explorer validate`: planted volumes with known answers, the quick benchmark run end to end, its resume
from the cache, and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.cli import main
from explorer.errors import InputError
from explorer.reporting.figures.validation import validation_figure
from explorer.validation import REFERENCE_METHOD, ValidationSpec
from explorer.validation.planted import PlantedParams, make_planted, planted_label, textures
from explorer.validation.score import expected_sign, network_score, t_interval

PARAMS = PlantedParams(shape=(48, 48, 40))


def _neighbour_corr(stack: np.ndarray, lag: int = 1) -> float:
    """Mean Pearson correlation between slice z and slice z + lag of a (Z, X, Y) stack."""
    flat = stack.reshape(len(stack), -1)
    return float(np.mean([np.corrcoef(flat[z], flat[z + lag])[0, 1] for z in range(len(flat) - lag)]))


def test_independent_textures_do_not_correlate_across_slices() -> None:
    stack = textures(PARAMS, "independent", np.random.default_rng(0))
    assert stack.shape == (40, 48, 48)
    assert abs(_neighbour_corr(stack)) < 0.05
    assert np.allclose(stack.mean(axis=(1, 2)), 0) and np.allclose(stack.std(axis=(1, 2)), 1)


def test_correlated_textures_follow_rho() -> None:
    stack = textures(PARAMS, "correlated", np.random.default_rng(0))
    assert _neighbour_corr(stack) == pytest.approx(PARAMS.rho, abs=0.06)
    assert _neighbour_corr(stack, lag=2) == pytest.approx(PARAMS.rho**2, abs=0.08)


@pytest.mark.parametrize("direction", [-1, 0, 1])
def test_label_depends_only_on_the_planted_slice(direction: int) -> None:
    stack = textures(PARAMS, "independent", np.random.default_rng(1))
    label = planted_label(stack, direction, PARAMS)
    assert 0.3 < label.mean() < 0.5  # balanced foreground
    for changed in (0, 17, 39):
        other = stack.copy()
        other[changed] = np.random.default_rng(2).permutation(other[changed].ravel()).reshape(other[changed].shape)
        moved = np.flatnonzero((planted_label(other, direction, PARAMS) != label).any(axis=(1, 2)))
        source = np.clip(np.arange(len(stack)) + direction, 0, len(stack) - 1)
        assert set(moved) == set(np.flatnonzero(source == changed))


def test_planted_volumes_are_seeded_and_differ_by_seed() -> None:
    a, la = make_planted(PARAMS, "independent", 1, 0)
    b, lb = make_planted(PARAMS, "independent", 1, 0)
    c, _ = make_planted(PARAMS, "independent", 1, 1)
    assert a.shape == PARAMS.shape and a.dtype == np.float32 and la.dtype == bool
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)
    # canonical (X, Y, Z): the label of axial slice z comes from slice z + 1
    assert np.array_equal(la[:, :, 5], planted_label(np.moveaxis(a, -1, 0).astype(np.float64), 1, PARAMS)[5])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"strategies": ("imagenet", "nope")}, "unknown strategy 'nope'"),
        ({"methods": ("occlusion:replace=sideways",)}, "unknown occlusion baseline 'sideways'"),
        ({"methods": ("occlusion:replace",)}, "NAME or NAME:KEY=VALUE"),
        ({"directions": (2,)}, "not among the offsets"),
        ({"regimes": ("smooth",)}, "unknown regime 'smooth'"),
        ({"seeds": 0}, "at least 1"),
    ],
)
def test_bad_spec_is_one_input_error(changes: dict, problem: str) -> None:
    with pytest.raises(InputError, match=problem.replace("(", r"\(")):
        ValidationSpec.quick(**changes)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``explorer validate --quick`` run twice into one folder with one cache folder (the second run resumes)."""
    root = tmp_path_factory.mktemp("validate")
    saved = os.environ.get("EXPLORER_CACHE_DIR"), torch.get_num_threads()
    os.environ["EXPLORER_CACHE_DIR"] = str(root / "cache")
    # One thread: on a 2-core CPU shared with other jobs, two OpenMP threads ran these small batches 10-20x
    # slower than one (spinning at barriers); on an idle CPU one thread costs little at 32x32.
    torch.set_num_threads(1)
    try:
        first = _cli(["validate", "--quick", "--out", str(root / "out")])
        csv = (root / "out" / "validation.csv").read_text()
        second = _cli(["validate", "--quick", "--out", str(root / "out")])
    finally:
        if saved[0] is None:
            os.environ.pop("EXPLORER_CACHE_DIR")
        else:
            os.environ["EXPLORER_CACHE_DIR"] = saved[0]
        torch.set_num_threads(saved[1])
    return {"out": root / "out", "first": first, "second": second, "first_csv": csv}


@pytest.mark.slow  # the quick run trains four networks: about 40 s on a 2-core CPU
def test_quick_run_recovers_the_planted_direction(quick: dict) -> None:
    code, stdout, stderr = quick["first"]
    assert code == 0, stderr
    rows = pd.read_csv(quick["out"] / "validation.csv")
    assert len(rows) == 2 * 2 * 2  # strategies × directions × methods, one seed
    ref = rows[rows["method"] == REFERENCE_METHOD]
    for row in ref.itertuples():  # imagenet and imagenet-uniform alike
        if row.direction == 1:  # label from the next slice: depends on offset +1, AI < 0
            assert row.channel_asymmetry < -0.1 and row.channel_ci95_hi < 0, row
        else:
            assert row.channel_asymmetry > 0.1 and row.channel_ci95_lo > 0, row
        assert row.sign_correct and row.passed
    assert "4 network(s) trained, 0 from the cache" in stdout


@pytest.mark.slow
def test_functional_dice_drops_only_for_the_planted_channel(quick: dict) -> None:
    rows = pd.read_csv(quick["out"] / "validation.csv").drop_duplicates("checkpoint_sha256")
    assert len(rows) == 4
    for row in rows.to_dict("records"):
        planted = row[f"dice_ablate_{row['direction']:+d}"]
        others = [
            row[c]
            for c in ("dice_ablate_-1", "dice_ablate_0", "dice_ablate_+1")
            if c != f"dice_ablate_{row['direction']:+d}"
        ]
        assert row["dice_intact"] > 0.7, row
        assert min(others) > 0.9 * row["dice_intact"], row
        assert planted < 0.6 * min(others), row
        assert row["dice_zflip"] < 0.7 * row["dice_intact"], row  # the neighbours swap places


@pytest.mark.slow
def test_rerun_resumes_from_the_cache(quick: dict) -> None:
    code, stdout, stderr = quick["second"]
    assert code == 0, stderr
    assert "0 network(s) trained, 4 from the cache" in stdout
    record = json.loads((quick["out"] / "validation.json").read_text())
    assert (record["trained"], record["from_cache"], record["networks"]) == (0, 4, 4)
    assert (quick["out"] / "validation.csv").read_text() == quick["first_csv"]


@pytest.mark.slow
def test_quick_outputs_record_the_run(quick: dict) -> None:
    record = json.loads((quick["out"] / "validation.json").read_text())
    assert len(record["table"]) == 8 and record["reference_method"] == REFERENCE_METHOD
    assert record["parameters"]["planted"]["shape"] == [32, 32, 24]
    assert record["parameters"]["planted"]["generator_version"] >= 1
    assert record["seeds"] == [0] and record["command"].startswith("explorer validate --quick")
    assert {"torch", "explorer"} <= set(record["versions"])
    for case in record["inputs"].values():
        assert case["train"]["volume_sha256"] != case["heldout"]["volume_sha256"]  # held-out never seen
    assert (quick["out"] / "figures" / "validation.html").is_file()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--strategies", "nope"], "unknown strategy 'nope'"),
        (["--methods", "occlusion:replace=sideways"], "unknown occlusion baseline 'sideways'"),
        (["--directions", "3"], "not among the offsets"),
    ],
)
def test_bad_cli_input_is_one_line_exit_2(tmp_path: Path, argv: list[str], problem: str) -> None:
    code, stdout, stderr = _cli(["validate", "--quick", "--out", str(tmp_path / "out"), *argv])
    assert code == 2 and problem in stderr and len(stderr.strip().splitlines()) == 1 and not stdout


def test_foreign_out_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, stderr = _cli(["validate", "--quick", "--out", str(tmp_path)])
    assert code == 2 and "not explorer outputs" in stderr and len(stderr.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert not (Path(os.environ["EXPLORER_CACHE_DIR"]) / "validation").exists()  # nothing drawn or trained


def test_figure_shows_each_direction_per_panel() -> None:
    table = pd.DataFrame(
        [
            {
                "regime": r,
                "strategy": s,
                "direction": d,
                "method": m,
                "channel_asymmetry": -0.5 * d if m == "a" else 0.1,
                "ci95_lo": -0.5 * d - 0.1,
                "ci95_hi": -0.5 * d + 0.1,
                "seeds": 3,
            }
            for r in ("independent", "correlated")
            for s in ("imagenet", "random")
            for d in (-1, 0, 1)
            for m in ("a", "b")
        ]
    )
    fig = validation_figure(table)
    assert len(fig.data) == 2 * 2 * 3  # regimes × strategies × directions
    first = fig.data[0]  # independent, imagenet, d = -1
    assert list(first.x) == ["a", "b"] and list(first.y) == [0.5, 0.1]
    assert list(first.error_y.array) == pytest.approx([0.1, 0.5])
    assert sum(t.showlegend for t in fig.data) == 3  # one legend entry per direction
    with pytest.raises(KeyError, match="seeds"):
        validation_figure(table.drop(columns="seeds"))


def test_expected_sign_is_defined_for_the_innermost_pair_only() -> None:
    assert [expected_sign(d, (-1, 0, 1)) for d in (-1, 0, 1)] == [1, 0, -1]
    assert [expected_sign(d, (-2, -1, 0, 1, 2)) for d in (-2, -1, 0, 1, 2)] == [0, 1, 0, -1, 0]
    assert [expected_sign(d, (-2, 0, 2)) for d in (-2, 0, 2)] == [1, 0, -1]
    assert network_score(1, (-1, 0, 1), -0.4, [-0.5, -0.3]) == {
        "expected_sign": -1,
        "sign_correct": True,
        "passed": True,
    }
    assert network_score(1, (-1, 0, 1), -0.4, [-0.5, 0.1])["passed"] is False  # CI reaches 0
    assert network_score(-1, (-1, 0, 1), -0.4, [-0.5, -0.3])["sign_correct"] is False
    assert network_score(0, (-1, 0, 1), 0.2, [0.1, 0.3])["passed"] is None  # centre task: a value, no score


def test_directions_default_to_the_window_offsets() -> None:
    assert ValidationSpec().directions == (-1, 0, 1)
    assert ValidationSpec(offsets=("-2", "0", "2"), seeds=1).directions == (-2, 0, 2)


def test_t_interval_over_seeds() -> None:
    mean, lo, hi = t_interval(np.array([0.5, 0.7, 0.9]))
    assert mean == pytest.approx(0.7) and hi - mean == pytest.approx(4.302653 * 0.2 / np.sqrt(3), rel=1e-5)
    assert t_interval(np.array([0.5, np.nan]))[1:] == (None, None)  # one seed: no interval
