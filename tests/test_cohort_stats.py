"""Cohort statistics: known answers worked out by hand, seeded simulations and determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from explorer.cohort_stats import (
    default_block_length,
    hierarchical_bootstrap_ci,
    holm,
    lag1_autocorrelation,
    moving_block_bootstrap_ci,
    paired_wilcoxon,
    permutation_test_models,
    tost_equivalence,
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
    return (mu + rng.normal(0, tau, (n_models, 1)) + rng.normal(0, 0.03, (1, n_volumes))
            + rng.normal(0, 0.02, (n_models, n_volumes)))


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


# ------------------------------------------------------------------------------ hierarchical bootstrap


def test_group_mean_is_mean_over_models_of_mean_over_volumes() -> None:
    # model 0 sees volumes 0, 1 (mean 2); model 1 sees volumes 0, 1, 2 (mean 5); group mean 3.5
    table = np.array([[1.0, 3.0, np.nan], [4.0, 5.0, 6.0]])
    assert hierarchical_bootstrap_ci(table, n_boot=50)[0] == pytest.approx(3.5)
    np.testing.assert_allclose(volume_means(table), [2.5, 4.0, 6.0])


def test_hierarchical_ci_covers_the_truth_in_a_simulated_crossed_design() -> None:
    covered = 0
    for i in range(100):
        _, (lo, hi) = hierarchical_bootstrap_ci(crossed_design(0.02, seed=100 + i), n_boot=500, seed=i)
        covered += lo <= 0.05 <= hi
    assert covered >= 85  # nominal 95; percentile intervals with 5 models undercover a little


def test_hierarchical_ci_widens_with_model_spread() -> None:
    rng = np.random.default_rng(5)
    model, volume, noise = rng.normal(0, 1, (5, 1)), rng.normal(0, 0.03, (1, 10)), rng.normal(0, 0.02, (5, 10))
    widths = []
    for tau in (0.0, 0.01, 0.05):
        _, (lo, hi) = hierarchical_bootstrap_ci(0.05 + tau * model + volume + noise, n_boot=1000, seed=0)
        widths.append(hi - lo)
    assert widths[0] < widths[1] < widths[2]
    assert widths[2] > 2 * widths[0]


def test_hierarchical_bootstrap_is_deterministic_and_checks_its_input() -> None:
    table = crossed_design(0.02, seed=1)
    assert hierarchical_bootstrap_ci(table, seed=3) == hierarchical_bootstrap_ci(table, seed=3)
    with pytest.raises(ValueError, match="2-D"):
        hierarchical_bootstrap_ci(np.ones(4))
    mean, (lo, _) = hierarchical_bootstrap_ci(np.full((2, 3), np.nan))
    assert math.isnan(mean) and math.isnan(lo)


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
    assert res["p"] == pytest.approx(2 / 20)
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
    assert 1 / 2001 <= res["p"] < 0.05
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


# ---------------------------------------------------------------------------------------------- TOST


def test_tost_equivalent_near_zero_not_near_point_one() -> None:
    rng = np.random.default_rng(6)
    near_zero = tost_equivalence(rng.normal(0.0, 0.01, 20))
    assert near_zero["equivalent"] and near_zero["p"] < 0.05
    assert near_zero["p"] == max(near_zero["p_lower"], near_zero["p_upper"])
    assert -0.02 < near_zero["ci"][0] < near_zero["ci"][1] < 0.02
    far = tost_equivalence(rng.normal(0.1, 0.01, 20))
    assert not far["equivalent"] and far["p_upper"] > 0.5
    assert far["margin"] == 0.02 and far["alpha"] == 0.05


def test_tost_too_few_or_too_noisy_is_not_equivalent() -> None:
    assert not tost_equivalence(np.random.default_rng(7).normal(0.0, 0.2, 10))["equivalent"]
    assert not tost_equivalence(np.array([0.0]))["equivalent"]
    assert tost_equivalence(np.zeros(5))["equivalent"]  # no spread, mean inside the margin
    with pytest.raises(ValueError, match="margin"):
        tost_equivalence(np.zeros(5), margin=0)


def test_tost_on_a_table_uses_the_volume_as_unit() -> None:
    table = crossed_design(0.0, seed=8, mu=0.0) * 0.2
    res = tost_equivalence(table)
    assert res["n"] == table.shape[1] and res["unit"].startswith("volume")
    assert res == tost_equivalence(table) and res["mean"] == pytest.approx(volume_means(table).mean())


def test_a_cohort_equivalence_with_several_models_uses_the_model_as_unit() -> None:
    """Three models whose AIs are −0.03, +0.01, +0.05 on every one of 10 volumes: averaged per volume they are all
    +0.01 (equivalent within ±0.02 with the volume as unit), but the strategy's models spread beyond the margin,
    so a claim about the strategy is not supported; one model per group keeps the volume as unit."""
    from explorer.cohort.summary import summarise

    rng = np.random.default_rng(0)
    rows = [{"subject": f"s{v}", "model": f"m{m}", "strategy": "spread", "asymmetry_index": ai + rng.normal(0, 1e-3),
             "dice": np.nan, "error": None} for m, ai in enumerate((-0.03, 0.01, 0.05)) for v in range(10)]
    rows += [{"subject": f"s{v}", "model": "one", "strategy": "single", "asymmetry_index": 0.01 + rng.normal(0, 1e-3),
              "dice": np.nan, "error": None} for v in range(10)]
    equivalence = summarise(pd.DataFrame(rows))["equivalence"]
    assert equivalence["spread"]["unit"] == "model (mean over volumes)" and equivalence["spread"]["n"] == 3
    assert not equivalence["spread"]["equivalent"]
    assert equivalence["single"]["unit"].startswith("volume") and equivalence["single"]["equivalent"]
