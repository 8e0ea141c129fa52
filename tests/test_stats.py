"""Shares, asymmetry index (mean of ratios and mass-weighted), bootstrap CI, block sign-flip p, Dice: known
answers."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.stats.cohort import holm
from explorer.stats.scan import (
    asymmetry_index,
    compare_abs_ai,
    compare_models,
    dice,
    dice_per_slice,
    edge_trim_means,
    mass_weighted_asymmetry,
    mass_weighted_split,
    mean_ci,
    model_summary,
    shares_from_masses,
    split_summary,
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
    headline = ("mean", "ci95", "p", "p_min", "mass_weighted")
    assert summary["asymmetry_index"] == {k: summary["asymmetry_by_pair"]["1"][k] for k in headline}
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


def test_mass_weighted_asymmetry_hand_worked() -> None:
    """Σ m₋ = 3 + 1 = 4, Σ m₊ = 1 + 1 = 2: (4 − 2) / 6 = 1/3, while the mean of per-slice ratios is (0.5 + 0) / 2;
    a skipped (NaN) slice is left out of both sums."""
    masses = np.array([[3.0, 1.0, 1.0], [1.0, 5.0, 1.0], [np.nan] * 3])
    assert mass_weighted_asymmetry(masses, OFFSETS) == pytest.approx(1 / 3)
    assert np.nanmean(asymmetry_index(shares_from_masses(masses), OFFSETS)) == pytest.approx(0.25)
    assert mass_weighted_asymmetry(np.zeros((2, 3)), OFFSETS) is None
    summary = model_summary(masses, OFFSETS)
    assert summary["asymmetry_index"]["mass_weighted"] == pytest.approx(1 / 3)
    assert summary["asymmetry_by_pair"]["1"]["mass_weighted"] == pytest.approx(1 / 3)


def test_mass_weighted_split_hand_worked() -> None:
    """As they are: Σ(m₋ − m₊)/Σ(m₋ + m₊) = (4 − 2)/6 = 1/3. Reversed, mapped back to offsets: (2 − 4)/6 = −1/3, i.e.
    +1/3 in channel coordinates: all of it is channel asymmetry (1/3), none anatomy. A slice the reversed pass
    skipped is left out of both."""
    masses = np.array([[3.0, 1.0, 1.0], [1.0, 5.0, 1.0], [9.0, 1.0, 0.0]])
    reversed_masses = np.array([[1.0, 1.0, 3.0], [1.0, 5.0, 1.0], [np.nan] * 3])
    channel, anatomy = mass_weighted_split(masses, reversed_masses, OFFSETS)
    assert channel == pytest.approx(1 / 3) and anatomy == pytest.approx(0.0)
    split = split_summary(masses, reversed_masses, OFFSETS)
    assert split["channel_asymmetry"]["mass_weighted"] == pytest.approx(1 / 3)
    assert set(split["channel_asymmetry"]) >= {"p", "p_min", "block_length"}


def test_edge_trim_means_known_answer() -> None:
    values = np.array([1.0, np.nan, 0.0, 0.0, 0.0, 0.0, -3.0])  # finite: 1, 0, 0, 0, 0, -3
    np.testing.assert_allclose(edge_trim_means(values, 3), [-2 / 6, 0.0, 0.0, np.nan])


def test_summary_of_symmetric_masses_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    side = rng.uniform(1, 2, 60)
    masses = np.column_stack([side, rng.uniform(1, 2, 60), side[rng.permutation(60)]])
    summary = model_summary(masses, OFFSETS)
    lo, hi = summary["asymmetry_index"]["ci95"]
    assert lo < 0 < hi and summary["asymmetry_index"]["p"] > 0.05 and summary["n_slices"] == 60
    assert "wilcoxon_p" not in summary and summary["test"]["block_length"] == summary["bootstrap"]["block_length"]


def test_summary_p_is_the_block_sign_flip_with_the_bootstrap_block_length() -> None:
    """AI 1/3 on each of 6 slices that form 2 blocks: 4 sign patterns, only ± all-positive as extreme, p = 2/4; the
    Wilcoxon test over the 6 slices would say 2/2^6 = 0.03."""
    masses = np.tile([2.0, 1.0, 1.0], (6, 1)) * np.array([1.0, 1.2, 0.9, 1.1, 1.0, 0.8])[:, None]
    summary = model_summary(masses, OFFSETS)
    assert summary["asymmetry_index"]["mean"] == pytest.approx(1 / 3)
    block = summary["bootstrap"]["block_length"]
    n_blocks = -(-6 // block)
    assert summary["asymmetry_index"]["p"] == pytest.approx(2 / 2**n_blocks)
    assert summary["asymmetry_index"]["p_min"] == pytest.approx(2 / 2**n_blocks)


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
    assert out["n"] == 45 and out["p"] == out["p_min"] == pytest.approx(1 / 10000)  # Monte Carlo floor
    d = np.abs(ai_a[5:]) - np.abs(ai_b[5:])
    assert out["statistic"] == pytest.approx(d.mean()) and out["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert out["block_length"] >= 1 and "block sign-flip" in out["test"]
    assert out["mean_abs_ai"][0] > 0.2 > out["mean_abs_ai"][1]


def test_compare_models_holm_adjusts_across_model_pairs() -> None:
    rng = np.random.default_rng(5)
    ais = {"a": rng.uniform(0.2, 0.3, 40), "b": rng.normal(0, 0.02, 40), "c": rng.normal(0, 0.02, 40)}
    out = compare_models(ais)
    assert [c["models"] for c in out] == [["a", "b"], ["a", "c"], ["b", "c"]]
    p = [c["p"] for c in out]
    np.testing.assert_allclose([c["p_holm"] for c in out], holm(np.array(p)))
    assert out[2]["p_holm"] >= out[2]["p"]
