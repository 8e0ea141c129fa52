"""Shares, asymmetry index, bootstrap CI, Wilcoxon, Dice: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.stats import (
    asymmetry_index,
    compare_abs_ai,
    dice,
    dice_per_slice,
    mean_ci,
    model_summary,
    paired_wilcoxon,
    shares_from_masses,
)

OFFSETS = (-1, 0, 1)


def test_shares_normalise_rows_and_keep_skipped_rows_nan() -> None:
    masses = np.array([[1.0, 2.0, 1.0], [np.nan, np.nan, np.nan], [0.0, 0.0, 0.0], [3.0, 0.0, 1.0]])
    shares = shares_from_masses(masses)
    np.testing.assert_allclose(shares[0], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(shares[3], [0.75, 0.0, 0.25])
    assert np.isnan(shares[1]).all() and np.isnan(shares[2]).all()


def test_asymmetry_index_known_values() -> None:
    shares = np.array([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6], [0.0, 1.0, 0.0]])
    ai = asymmetry_index(shares, OFFSETS)
    np.testing.assert_allclose(ai[:2], [1 / 3, -0.5])
    assert np.isnan(ai[2])


def test_wider_window_reports_every_pair_and_the_innermost_as_headline() -> None:
    offsets = (-2, -1, 0, 1, 2)
    masses = np.tile([4.0, 3.0, 2.0, 1.0, 1.0], (30, 1)) + np.random.default_rng(0).uniform(0, 0.1, (30, 5))
    summary = model_summary(masses, offsets)
    assert set(summary["asymmetry_by_pair"]) == {"1", "2"}
    assert summary["asymmetry_index"] == {k: summary["asymmetry_by_pair"]["1"][k] for k in ("mean", "ci95")}
    assert summary["asymmetry_by_pair"]["2"]["mean"] == pytest.approx(0.6, abs=0.02)
    assert summary["asymmetry_index"]["mean"] == pytest.approx(0.5, abs=0.03)
    assert sum(summary["mean_share"].values()) == pytest.approx(1.0)


def test_mean_ci_contains_the_mean_and_is_reproducible() -> None:
    values = np.random.default_rng(1).normal(0.1, 0.05, 200)
    mean, (lo, hi) = mean_ci(values)
    assert lo < mean < hi and hi - lo < 0.03
    assert mean_ci(values) == (mean, [lo, hi])
    assert mean_ci(np.array([np.nan])) == (None, [None, None])
    assert mean_ci(np.array([0.3, 0.3, 0.3])) == (pytest.approx(0.3), [pytest.approx(0.3), pytest.approx(0.3)])


def test_wilcoxon_detects_a_shift_and_not_identity() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(0.3, 0.4, 40)
    assert paired_wilcoxon(a, a - 0.02) < 1e-6
    assert paired_wilcoxon(a, a) == 1.0
    assert paired_wilcoxon(a, a + rng.normal(0, 0.01, 40)) > 0.01
    assert paired_wilcoxon(np.array([0.1]), np.array([0.2])) is None


def test_summary_of_symmetric_masses_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    side = rng.uniform(1, 2, 60)
    masses = np.column_stack([side, rng.uniform(1, 2, 60), side[rng.permutation(60)]])
    summary = model_summary(masses, OFFSETS)
    lo, hi = summary["asymmetry_index"]["ci95"]
    assert lo < 0 < hi and summary["wilcoxon_p"] > 0.05 and summary["n_slices"] == 60


def test_dice_known_values() -> None:
    p = np.zeros((2, 4, 4), bool)
    t = np.zeros((2, 4, 4), bool)
    p[0, :2] = True
    t[0, :1] = True
    assert dice(p, t) == pytest.approx(2 * 4 / (8 + 4))
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    per_slice = dice_per_slice(p, t)
    assert per_slice[0] == pytest.approx(2 / 3) and np.isnan(per_slice[1])


def test_compare_abs_ai_pairs_slices_valid_in_both() -> None:
    rng = np.random.default_rng(4)
    ai_a = rng.uniform(0.2, 0.3, 50) * rng.choice([-1, 1], 50)
    ai_b = rng.uniform(0.0, 0.05, 50)
    ai_b[:5] = np.nan
    out = compare_abs_ai(ai_a, ai_b)
    assert out["n_slices"] == 45 and out["wilcoxon_p"] < 1e-6
    assert out["mean_abs_ai"][0] > 0.2 > out["mean_abs_ai"][1]
