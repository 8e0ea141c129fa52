"""Cohort statistics: known answers worked out by hand, seeded simulations and determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from explorer.stats.cohort import (
    block_sign_flip_test,
    default_block_length,
    holm,
    lag1_autocorrelation,
    magnitude_equivalence,
    minimum_detectable_effect,
    model_mean_t_interval,
    moving_block_bootstrap_ci,
    paired_wilcoxon,
    permutation_test_models,
    sign_flip_p_min,
    volume_means,
)


def ar1(phi: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal()
    return x


def crossed_design(tau: float, seed: int, n_models: int = 5, n_volumes: int = 10, mu: float = 0.05) -> np.ndarray:
    """``mu`` + model effect N(0, tau) + volume effect N(0, 0.03) + noise N(0, 0.02), models × volumes."""
    rng = np.random.default_rng(seed)
    return (
        mu
        + rng.normal(0, tau, (n_models, 1))
        + rng.normal(0, 0.03, (1, n_volumes))
        + rng.normal(0, 0.02, (n_models, n_volumes))
    )


# ------------------------------------------------------------------------------------- autocorrelation


def test_lag1_autocorrelation_known_values() -> None:
    # x = [1, -1, 1, -1]: mean 0, Σx² = 4, Σ x_t x_{t+1} = -3  →  -0.75
    assert lag1_autocorrelation(np.array([1.0, -1, 1, -1])) == pytest.approx(-0.75)
    # a NaN breaks the pairs on either side but not the mean: [1, 3, NaN, 2] → mean 2, centred -1, 1, ·, 0;
    # only the pair (1, 3) is left: (-1 · 1) / (1 + 1 + 0) = -0.5
    assert lag1_autocorrelation(np.array([1.0, 3, np.nan, 2])) == pytest.approx(-0.5)
    assert math.isnan(lag1_autocorrelation(np.array([1.0, 1.0, 1.0])))
    assert lag1_autocorrelation(ar1(0.9, 400, 0)) == pytest.approx(0.9, abs=0.06)


def test_default_block_length_grows_with_autocorrelation() -> None:
    white = np.random.default_rng(0).normal(size=200)
    assert default_block_length(white) <= 2
    assert default_block_length(ar1(0.5, 200, 1)) < default_block_length(ar1(0.9, 200, 1))
    assert default_block_length(np.array([1.0, -1, 1, -1, 1, -1])) == 1  # negative ρ → iid


# ----------------------------------------------------------------------------------- block bootstrap


def test_block_bootstrap_ci_is_wider_than_iid_for_a_correlated_series() -> None:
    x = ar1(0.9, 200, 3)
    mean, (lo, hi), b = moving_block_bootstrap_ci(x)
    _, (lo_iid, hi_iid), b_iid = moving_block_bootstrap_ci(x, block_length=1)
    assert b > 5 and b_iid == 1
    assert lo < mean < hi
    assert hi - lo > 2 * (hi_iid - lo_iid)  # AR(1) φ=0.9: true SE ≈ sqrt((1+φ)/(1-φ)) ≈ 4.4 × the iid one


def test_block_bootstrap_drops_nans_and_handles_degenerate_input() -> None:
    x = ar1(0.5, 60, 4)
    with_nans = np.concatenate([[np.nan], x, [np.nan, np.nan]])
    assert moving_block_bootstrap_ci(with_nans, block_length=4) == moving_block_bootstrap_ci(x, block_length=4)
    mean, ci, b = moving_block_bootstrap_ci(np.array([0.2, 0.2, 0.2]))
    assert mean == pytest.approx(0.2) and ci == (mean, mean) and b == 1
    mean, (lo, hi), b = moving_block_bootstrap_ci(np.array([np.nan]))
    assert math.isnan(mean) and math.isnan(lo) and b == 0
    with pytest.raises(ValueError, match="block_length"):
        moving_block_bootstrap_ci(x, block_length=0)


def test_block_bootstrap_is_deterministic_per_seed() -> None:
    x = ar1(0.6, 80, 5)
    assert moving_block_bootstrap_ci(x, seed=7) == moving_block_bootstrap_ci(x, seed=7)
    assert moving_block_bootstrap_ci(x, seed=7)[1] != moving_block_bootstrap_ci(x, seed=8)[1]


# ------------------------------------------------------------------------ t-interval over model means


def test_group_mean_is_mean_over_models_of_mean_over_volumes() -> None:
    # model 0 sees volumes 0, 1 (mean 2); model 1 sees volumes 0, 1, 2 (mean 5); group mean 3.5
    table = np.array([[1.0, 3.0, np.nan], [4.0, 5.0, 6.0]])
    res = model_mean_t_interval(table)
    assert res["mean"] == pytest.approx(3.5) and res["unit"] == "model" and res["df"] == 1
    np.testing.assert_allclose(volume_means(table), [2.5, 4.0, 6.0])


def test_t_interval_over_model_means_hand_worked() -> None:
    """Model means 1.5, 3.5, 5 (the third model misses a volume): mean 10/3, SD √(37/12), t_{0.975, 2} = 4.3027."""
    res = model_mean_t_interval(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan]]))
    half = 4.302652729911275 * math.sqrt(37 / 12) / math.sqrt(3)
    assert res["ci"] == pytest.approx((10 / 3 - half, 10 / 3 + half))
    assert res["df"] == 2 and res["method"].startswith("t-interval over model means")


def test_one_model_falls_back_to_the_volumes_and_says_so() -> None:
    res = model_mean_t_interval(np.array([[1.0, 2.0, 3.0]]))  # mean 2, SD 1, t_{0.975, 2}
    assert res["ci"] == pytest.approx((2 - 4.302652729911275 / math.sqrt(3), 2 + 4.302652729911275 / math.sqrt(3)))
    assert res["unit"] == "volume" and "one model" in res["method"] and "seed spread" in res["method"]


def test_t_interval_checks_its_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        model_mean_t_interval(np.ones(4))
    res = model_mean_t_interval(np.full((2, 3), np.nan))
    assert math.isnan(res["mean"]) and math.isnan(res["ci"][0])
    assert math.isnan(model_mean_t_interval(np.array([[0.2]]))["ci"][0])  # one value: no interval


# ------------------------------------------------------------------------------------ paired Wilcoxon


def test_paired_wilcoxon_all_positive_differences() -> None:
    a, b = np.arange(1.0, 11.0), np.zeros(10)
    res = paired_wilcoxon(a, b, seed=0)
    assert res["rank_biserial"] == 1.0
    assert res["p"] == pytest.approx(2 / 2**10)  # exact: only the all-positive sign pattern is as extreme
    assert res["median_difference"] == 5.5
    assert res["ci"][0] <= 5.5 <= res["ci"][1]
    assert paired_wilcoxon(b, a)["rank_biserial"] == -1.0


def test_rank_biserial_hand_worked() -> None:
    # d = [1, -2, 3, 4]: ranks of |d| 1, 2, 3, 4; W+ = 8, W- = 2 → r = 6 / 10; zero differences are dropped
    res = paired_wilcoxon(np.array([1.0, -2, 3, 4, 0]), np.zeros(5))
    assert res["rank_biserial"] == pytest.approx(0.6)
    assert res["n"] == 5 and res["median_difference"] == 1.0


def test_paired_wilcoxon_minimum_attainable_p() -> None:
    """4 volumes, all differences positive: the exact signed-rank test's smallest two-sided p, 2/2^4 = 0.125."""
    res = paired_wilcoxon(np.array([1.0, 2, 3, 4]), np.zeros(4))
    assert res["p"] == pytest.approx(0.125) and res["p_min"] == 0.125
    assert sign_flip_p_min(10) == pytest.approx(2 / 1024) and sign_flip_p_min(1) == 1.0


def test_paired_wilcoxon_degenerate_cases() -> None:
    same = paired_wilcoxon(np.ones(6), np.ones(6))
    assert same["p"] == 1.0 and same["rank_biserial"] == 0.0 and same["ci"] == (0.0, 0.0)
    assert paired_wilcoxon(np.array([1.0, np.nan]), np.array([np.nan, 2.0]))["n"] == 0
    with pytest.raises(ValueError, match="length"):
        paired_wilcoxon(np.ones(3), np.ones(4))


# ------------------------------------------------------------------------------- permutation over models


def test_exact_permutation_3_vs_3_fully_separated() -> None:
    res = permutation_test_models(np.array([0.10, 0.11, 0.12]), np.array([0.00, 0.01, 0.02]))
    assert res["exact"] and res["n_relabelings"] == 20
    assert res["p"] == pytest.approx(2 / 20) and res["p_min"] == pytest.approx(2 / 20)
    assert res["statistic"] == pytest.approx(0.1)


def test_permutation_reduces_tables_to_model_means() -> None:
    a = np.array([[0.1, 0.3], [0.2, 0.2], [0.3, np.nan]])  # model means 0.2, 0.2, 0.3
    b = np.array([[0.0, 0.0], [0.1, 0.1], [0.0, 0.2]])  # model means 0.0, 0.1, 0.1
    assert permutation_test_models(a, b) == permutation_test_models([0.2, 0.2, 0.3], [0.0, 0.1, 0.1])


def test_monte_carlo_permutation_is_seeded() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 15), rng.normal(1, 1, 15)  # C(30, 15) ≈ 1.6e8 relabelings: Monte Carlo
    res = permutation_test_models(a, b, n_resamples=2000, seed=4)
    assert not res["exact"] and res["n_relabelings"] == 2000
    assert res == permutation_test_models(a, b, n_resamples=2000, seed=4)
    assert 1 / 2001 <= res["p"] < 0.05 and res["p_min"] == pytest.approx(2 / 2001)
    with pytest.raises(ValueError, match="at least one model"):
        permutation_test_models([], [1.0])


# ---------------------------------------------------------------------------------------------- Holm


def test_holm_hand_worked() -> None:
    # sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 = 0.04 → monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    out = holm([0.02, np.nan, 0.04])
    np.testing.assert_allclose(out[[0, 2]], [0.04, 0.04])
    assert math.isnan(out[1])
    assert holm([]).shape == (0,)


# ------------------------------------------------------------------------------- block sign-flip test


def test_block_sign_flip_hand_worked() -> None:
    """[1, 2, 3, 4], blocks of 1: of the 16 sign patterns only ± all-positive reach |mean| 2.5, p = 2/16; blocks of
    2 ([1, 2], [3, 4]): the 4 patterns give means ±2.5 and ±1, p = 2/4. A NaN slice is dropped first."""
    one = block_sign_flip_test(np.array([1.0, 2, np.nan, 3, 4]), block_length=1)
    assert one["p"] == pytest.approx(0.125) and one["p_min"] == pytest.approx(0.125)
    assert one["statistic"] == 2.5 and one["n_blocks"] == 4 and one["exact"] and one["n"] == 4
    two = block_sign_flip_test(np.array([1.0, 2, 3, 4]), block_length=2)
    assert two["p"] == pytest.approx(0.5) and two["p_min"] == pytest.approx(0.5) and two["n_blocks"] == 2
    # [1, -1, 2], blocks of 1: observed |sum| 2; |±1 ±1 ±2| is 4, 2, 2, 0 and the same for the negated patterns
    # (≥ 2 in 6 of 8)
    assert block_sign_flip_test(np.array([1.0, -1.0, 2.0]), block_length=1)["p"] == pytest.approx(6 / 8)
    assert block_sign_flip_test(np.zeros(5), block_length=1)["p"] == 1.0
    assert math.isnan(block_sign_flip_test(np.full(3, np.nan))["p"])


def test_block_sign_flip_uses_the_bootstrap_block_length_and_holds_its_level_on_correlated_slices() -> None:
    """AR(1) slices with ρ = 0.6 and mean 0: the Wilcoxon test over slices rejects far too often (it counts
    correlated slices as independent); the block sign-flip test with the bootstrap's block length stays near
    its nominal 5%."""
    from scipy import stats

    x = ar1(0.6, 120, seed=3)
    assert block_sign_flip_test(x)["block_length"] == default_block_length(x) > 1
    rejected_blocks = rejected_wilcoxon = 0
    for i in range(200):
        x = ar1(0.6, 120, seed=1000 + i)
        rejected_blocks += block_sign_flip_test(x, n_resamples=499, seed=i)["p"] < 0.05
        rejected_wilcoxon += stats.wilcoxon(x).pvalue < 0.05
    assert rejected_wilcoxon > 40 and rejected_blocks < 25  # out of 200: ≥ 20% against ≤ 12.5%


def test_monte_carlo_sign_flip_is_seeded() -> None:
    x = np.arange(40.0) - 10
    res = block_sign_flip_test(x, block_length=1, n_resamples=999, seed=2)
    assert not res["exact"] and res["p_min"] == pytest.approx(1 / 1000) and res["p"] >= 1 / 1000
    assert res == block_sign_flip_test(x, block_length=1, n_resamples=999, seed=2)
    with pytest.raises(ValueError, match="block_length"):
        block_sign_flip_test(x, block_length=0)


# ------------------------------------------------------------------------------ equivalence on magnitudes


def test_magnitude_equivalence_hand_worked() -> None:
    """|x| = 0.01, 0.02, 0.03: mean 0.02, SD 0.01, t = (0.02 − 0.05) / (0.01/√3) = −5.196 on 2 df."""
    from scipy import stats

    res = magnitude_equivalence(np.array([0.01, -0.02, 0.03]), margin=0.05)
    assert res["mean_abs"] == pytest.approx(0.02)
    assert res["p"] == pytest.approx(stats.t.cdf(-0.03 / (0.01 / math.sqrt(3)), 2))
    assert res["equivalent"] and res["p_min"] == 0.0
    mde = (stats.t.ppf(0.95, 2) + stats.t.ppf(0.8, 2)) * 0.01 / math.sqrt(3)
    assert res["mde"] == pytest.approx(mde) and res["detectable_below"] == pytest.approx(0.05 - mde)
    assert res["upper"] == pytest.approx(0.02 + stats.t.ppf(0.95, 2) * 0.01 / math.sqrt(3))


def test_seeds_at_plus_and_minus_point_one_do_not_remove_the_asymmetry() -> None:
    """The defect of TOST on the signed mean: 20 seeds at ±0.1 average to 0, yet none is near 0."""
    seeds = np.tile([0.1, -0.1], 10) + np.random.default_rng(0).normal(0, 0.001, 20)
    assert abs(seeds.mean()) < 0.001
    res = magnitude_equivalence(seeds, margin=0.05)
    assert not res["equivalent"] and res["p"] > 0.99 and res["mean_abs"] == pytest.approx(0.1, abs=0.002)


def test_magnitude_equivalence_degenerate_cases() -> None:
    assert not magnitude_equivalence(np.array([0.0]), 0.05)["equivalent"]
    assert magnitude_equivalence(np.zeros(5), 0.05)["equivalent"]  # no spread, inside the margin
    assert not magnitude_equivalence(np.full(5, 0.06), 0.05)["equivalent"]
    with pytest.raises(ValueError, match="margin"):
        magnitude_equivalence(np.zeros(5), margin=0)


def test_minimum_detectable_effect_formula() -> None:
    from scipy import stats

    assert minimum_detectable_effect(0.1, 10, sides=2) == pytest.approx(
        (stats.t.ppf(0.975, 9) + stats.t.ppf(0.8, 9)) * 0.1 / math.sqrt(10)
    )
    assert math.isnan(minimum_detectable_effect(0.1, 1))


def test_a_cohort_equivalence_with_several_models_uses_the_model_as_unit() -> None:
    """Three models whose AIs are −0.03, +0.01, +0.05 on every one of 10 volumes: averaged per volume they are all
    +0.01, but the strategy's models have mean |AI| 0.03 with a spread that cannot show it below ±0.05 on 2 df, so
    a claim about the strategy is not supported; one model per group keeps the volume as unit (its 10 volumes at
    |AI| ≈ 0.01 pass)."""
    from explorer.cohort.summary import summarise

    rng = np.random.default_rng(0)
    rows = [
        {
            "subject": f"s{v}",
            "model": f"m{m}",
            "strategy": "spread",
            "asymmetry_index": ai + rng.normal(0, 1e-3),
            "dice": np.nan,
            "error": None,
        }
        for m, ai in enumerate((-0.03, 0.01, 0.05))
        for v in range(10)
    ]
    rows += [
        {
            "subject": f"s{v}",
            "model": "one",
            "strategy": "single",
            "asymmetry_index": 0.01 + rng.normal(0, 1e-3),
            "dice": np.nan,
            "error": None,
        }
        for v in range(10)
    ]
    summary = summarise(pd.DataFrame(rows))
    equivalence = summary["equivalence"]
    assert equivalence["spread"]["unit"] == "model (mean over volumes)" and equivalence["spread"]["n"] == 3
    assert not equivalence["spread"]["equivalent"] and "not shown" in equivalence["spread"]["claim"]
    assert equivalence["single"]["unit"].startswith("volume") and equivalence["single"]["equivalent"]
    assert equivalence["single"]["claim"].startswith("removes the asymmetry")
    assert (
        summary["equivalence_margin"]["margin"] == 0.05 and "negligible" in summary["equivalence_margin"]["rationale"]
    )
    assert summary["groups"]["spread"]["asymmetry_index"]["method"].startswith("t-interval over model means")
    assert summary["groups"]["single"]["asymmetry_index"]["unit"] == "volume"
    assert "t-interval over model means" in summary["interval_method"]


def test_one_holm_family_covers_every_comparison_and_equivalence_test() -> None:
    """Three strategies of 3 models on 4 volumes: 3 pairs × (Wilcoxon over volumes + permutation over models) + 3
    equivalence tests = 9 tests in one family; each p carries its design minimum (0.125 for 4 volumes, 0.1 for 3 vs
    3 models), and a permutation test that cannot reach 0.05 has no detectable difference."""
    from explorer.cohort.summary import summarise

    rng = np.random.default_rng(1)
    rows = [
        {
            "subject": f"s{v}",
            "model": f"{name}-{m}",
            "strategy": name,
            "channel_asymmetry": level + rng.normal(0, 0.01),
            "asymmetry_index": 0.0,
            "dice": np.nan,
            "error": None,
        }
        for name, level in (("a", 0.3), ("b", 0.1), ("c", 0.0))
        for m in range(3)
        for v in range(4)
    ]
    summary = summarise(pd.DataFrame(rows), margin=0.05)
    assert summary["endpoint"] == "channel_asymmetry" and summary["family"]["size"] == 9
    tests = [*summary["comparisons"], *summary["equivalence"].values()]
    p = np.array([t["p"] for t in tests])
    np.testing.assert_allclose([t["p_holm"] for t in tests], holm(p))
    volume = [c for c in summary["comparisons"] if c["unit"] == "volume"]
    model = [c for c in summary["comparisons"] if c["unit"] == "model"]
    assert len(volume) == len(model) == 3
    assert all(c["p_min"] == 0.125 for c in volume) and all(c["p_min"] == pytest.approx(0.1) for c in model)
    assert all(c["mde"] is None for c in model)
    assert summary["equivalence"]["c"]["p_min"] == 0.0 and not summary["equivalence"]["a"]["equivalent"]


def test_the_cli_prints_removes_only_when_the_test_passes_and_every_p_with_its_minimum() -> None:
    """Two strategies of 3 models on 4 volumes: "flat" (|AI| ≈ 0.005) passes the equivalence test within ±0.05,
    "lopsided" (AI ≈ 0.3) does not; every printed p has its minimum attainable p beside it."""
    from explorer.cli import _cohort_lines
    from explorer.cohort.summary import summarise

    rng = np.random.default_rng(2)
    rows = [
        {
            "subject": f"s{v}",
            "model": f"{name}-{m}",
            "strategy": name,
            "channel_asymmetry": level + rng.normal(0, 0.002),
            "asymmetry_index": 0.0,
            "dice": np.nan,
            "error": None,
        }
        for name, level in (("lopsided", 0.3), ("flat", 0.005))
        for m in range(3)
        for v in range(4)
    ]
    lines = _cohort_lines(summarise(pd.DataFrame(rows)))
    removes = [line for line in lines if "removes the asymmetry" in line and "not shown" not in line]
    assert len(removes) == 1 and removes[0].startswith("flat: removes the asymmetry")
    assert any(line.startswith("lopsided: not shown to remove the asymmetry") for line in lines)
    p_lines = [line for line in lines if " p " in line]
    assert len(p_lines) == 4 and all("min attainable" in line for line in p_lines)  # 2 comparisons + 2 equivalence
    assert any("min attainable 0.1)" in line and "cannot reach p < 0.05" in line for line in lines)
    assert "t-interval over model means" in lines[0] and lines[-1].startswith("Holm family: 4 tests")
    assert "negligible" in lines[-1]
