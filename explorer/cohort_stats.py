"""Cohort statistics with the volume and the trained model as units of inference (DESIGN.md section 10).

Pure functions on numpy arrays: no I/O, no torch. Shapes:

- ``values``: ``(S,)`` per-slice numbers of one volume in slice order (e.g. ``AI_1[z]``), NaN for skipped slices;
- ``table``: ``(M, V)`` one group's per-volume numbers, row = model (a seed of one strategy), column =
  volume, the same volumes in the same column order for every model; NaN where a pair is missing;
- ``a``, ``b``: ``(V,)`` paired per-volume numbers of two groups (each the per-volume AI averaged over the
  group's models, see :func:`volume_means`).

Every resampling function takes a ``seed`` and gives identical results for identical inputs and seed.
CIs are percentile intervals. Where scipy.stats has the test it is used; the block and hierarchical
bootstraps and Holm's correction are written here because scipy has only the iid bootstrap and the
Benjamini–Hochberg adjustment (statsmodels is deliberately not a dependency).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

_CHUNK = 200  # bootstrap replicates evaluated per vectorised batch (bounds memory to ~_CHUNK × M × V floats)


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """NaN-ignoring mean that returns NaN for an all-NaN slice without numpy's RuntimeWarning."""
    ok = np.isfinite(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, a, 0.0).sum(axis=axis) / ok.sum(axis=axis)


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _percentile_ci(replicates: np.ndarray, level: float) -> tuple[float, float]:
    r = replicates[np.isfinite(replicates)]
    if r.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(r, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def lag1_autocorrelation(values: np.ndarray) -> float:
    """Lag-1 sample autocorrelation ``Σ (x_t − x̄)(x_{t+1} − x̄) / Σ (x_t − x̄)²`` (Box & Jenkins).

    Only pairs of neighbouring slices that are both finite enter the numerator; the mean and the
    denominator use every finite value. Returns NaN with fewer than 3 finite values, no finite
    neighbouring pair, or zero variance.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(x)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return math.nan
    centred = x - x[ok].mean()
    denom = float(np.sum(centred[ok] ** 2))
    pair = ok[:-1] & ok[1:]
    if denom == 0 or not pair.any():
        return math.nan
    return float(np.sum(centred[:-1][pair] * centred[1:][pair]) / denom)


def default_block_length(values: np.ndarray) -> int:
    """Block length for the circular block bootstrap of a mean, from the lag-1 autocorrelation ``ρ``.

    ``b = round((3/2 · (2ρ / (1 − ρ²))²)^{1/3} · n^{1/3})``, clipped to ``[1, n]``: the optimal circular-block
    length ``(2G²/D)^{1/3} n^{1/3}`` of Politis & White (2004; corrected by Patton, Politis & White, 2009,
    ``D = 4/3 g(0)²``) evaluated for an AR(1) series, where ``G/g(0) = 2ρ/(1 − ρ²)``. Why: it keeps the
    ``n^{1/3}`` rate that minimises the variance estimator's error (Hall, Horowitz & Jing, 1995) but lets
    strongly correlated slices get longer blocks; ``ρ ≤ 0`` (or undefined) gives 1, the iid bootstrap.
    """
    n = _finite(values).size
    rho = lag1_autocorrelation(values)
    if n < 2 or not np.isfinite(rho) or rho <= 0:
        return 1
    rho = min(rho, 0.99)
    ratio = 2 * rho / (1 - rho**2)
    return int(np.clip(round((1.5 * ratio**2) ** (1 / 3) * n ** (1 / 3)), 1, n))


def moving_block_bootstrap_ci(values: np.ndarray, block_length: int | None = None, n_boot: int = 2000,
                              seed: int = 0, level: float = 0.95) -> tuple[float, tuple[float, float], int]:
    """Mean of one volume's per-slice values and its circular block-bootstrap percentile CI.

    Blocks of ``block_length`` consecutive slices start at uniform positions and wrap around the end
    (circular block bootstrap, Politis & Romano 1992; a moving-block bootstrap, Künsch 1989, that gives
    every slice the same chance of being drawn); ``ceil(n / b)`` blocks are joined and cut to ``n``.
    NaN slices are dropped first, so a block may join the slices on either side of a skipped run.

    Args:
        values: ``(S,)`` per-slice values in slice order.
        block_length: slices per block; ``None`` uses :func:`default_block_length`. 1 is the iid bootstrap.
        n_boot: bootstrap replicates.
        seed: seed of ``numpy.random.default_rng``.
        level: confidence level.

    Returns:
        ``(mean, (lo, hi), block_length)``; NaNs (and block length 0) when no value is finite.

    Raises:
        ValueError: ``block_length`` < 1 or ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    x = _finite(values)
    n = x.size
    if n == 0:
        return math.nan, (math.nan, math.nan), 0
    b = default_block_length(values) if block_length is None else int(block_length)
    if b < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    b = min(b, n)
    mean = float(x.mean())
    if n == 1 or np.ptp(x) == 0:
        return mean, (mean, mean), b
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // b)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    index = ((starts[:, :, None] + np.arange(b)) % n).reshape(n_boot, -1)[:, :n]
    return mean, _percentile_ci(x[index].mean(axis=1), level), b


def volume_means(table: np.ndarray) -> np.ndarray:
    """Per-volume value averaged over a group's models: ``(M, V)`` → ``(V,)`` (NaN-aware)."""
    return _nanmean(np.atleast_2d(np.asarray(table, dtype=np.float64)), axis=0)


def _group_mean(t: np.ndarray) -> np.ndarray:
    """Mean over models (axis -2) of the mean over volumes (axis -1), NaN-aware; leading axes kept."""
    return _nanmean(_nanmean(t, axis=-1), axis=-1)


def hierarchical_bootstrap_ci(table: np.ndarray, n_boot: int = 2000, seed: int = 0,
                              level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Group AI (mean over models of each model's mean over volumes) and its hierarchical bootstrap CI.

    Each replicate resamples the group's models with replacement, then the volumes with replacement,
    and recomputes the group mean. Models and volumes are crossed (every model saw the same volumes), so
    one draw of volumes is shared by all drawn models, which keeps the subject effect common to them
    (the "pigeonhole" bootstrap of a crossed design, Owen 2007; conservative by at most the interaction
    term). Cf. Davison & Hinkley (1997) §3.8 and Saravanan et al. (2020) on multi-level bootstraps.
    With one model only the volumes are resampled: the CI then says nothing about seed-to-seed spread.

    Args:
        table: ``(M, V)`` per-volume values, row = model, column = volume, NaN where missing.
        n_boot: bootstrap replicates.
        seed: seed of ``numpy.random.default_rng``.
        level: confidence level.

    Returns:
        ``(mean, (lo, hi))``; NaNs when no value is finite.

    Raises:
        ValueError: ``table`` is not 2-D or ``level`` is outside (0, 1).
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"table must be 2-D (models × volumes), got shape {t.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    t = t[np.isfinite(t).any(axis=1)][:, np.isfinite(t).any(axis=0)]
    if t.size == 0:
        return math.nan, (math.nan, math.nan)
    mean = float(_group_mean(t))
    n_models, n_volumes = t.shape
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        size = min(_CHUNK, n_boot - start)
        rows = rng.integers(0, n_models, size=(size, n_models))
        cols = rng.integers(0, n_volumes, size=(size, n_volumes))
        replicates[start:start + size] = _group_mean(t[rows[:, :, None], cols[:, None, :]])
    return mean, _percentile_ci(replicates, level)


def paired_wilcoxon(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """Paired Wilcoxon signed-rank test across volumes, with effect sizes.

    ``scipy.stats.wilcoxon`` on ``d = a − b`` (zero differences dropped, Wilcoxon's method; exact null
    distribution for small samples without ties). Effect sizes: the matched-pairs rank-biserial correlation
    ``r = (W+ − W−) / (W+ + W−)`` over the non-zero differences (Kerby 2014; +1 when every a > b), and the
    median of ``d`` with a percentile bootstrap CI (``scipy.stats.bootstrap`` resampling pairs).

    Args:
        a: ``(V,)`` per-volume values of group a; ``b`` the same volumes for group b. Pairs with a NaN drop.
        n_boot, seed, level: of the median's bootstrap.

    Returns:
        ``{"test", "n", "statistic", "p", "rank_biserial", "median_difference", "ci"}``; ``statistic`` is
        scipy's two-sided ``min(W+, W−)``; ``p`` is 1 when every difference is zero and NaN with fewer
        than 2 pairs.

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    out = {"test": "paired Wilcoxon signed-rank across volumes", "n": int(d.size), "statistic": math.nan,
           "p": math.nan, "rank_biserial": math.nan, "median_difference": math.nan, "ci": (math.nan, math.nan)}
    if d.size == 0:
        return out
    median = float(np.median(d))
    out["median_difference"] = median
    if np.ptp(d) == 0:
        out["ci"] = (median, median)
    else:
        res = sps.bootstrap((d,), np.median, n_resamples=n_boot, confidence_level=level, method="percentile",
                            rng=np.random.default_rng(seed))
        out["ci"] = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    nonzero = d[d != 0]
    if nonzero.size == 0:
        out.update(statistic=0.0, p=1.0 if d.size >= 2 else math.nan, rank_biserial=0.0)
        return out
    ranks = sps.rankdata(np.abs(nonzero))
    w_plus, w_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
    out["rank_biserial"] = (w_plus - w_minus) / (w_plus + w_minus)
    if d.size >= 2:
        res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out.update(statistic=float(res.statistic), p=float(res.pvalue))
    return out


def _model_means(group: np.ndarray) -> np.ndarray:
    g = np.asarray(group, dtype=np.float64)
    return _finite(_nanmean(g, axis=1) if g.ndim == 2 else g)


def permutation_test_models(group_a: np.ndarray, group_b: np.ndarray, n_resamples: int = 9999,
                            seed: int = 0, max_exact: int = 20000) -> dict:
    """Two-sided permutation test of the difference in mean between two groups of trained models.

    Each model contributes one number, its mean over the (same) volumes, so the model (seed) is the unit.
    ``scipy.stats.permutation_test`` (independent samples) enumerates all ``C(n_a + n_b, n_a)`` relabelings
    when there are at most ``max_exact``, else draws ``n_resamples`` at random (p then includes the
    observed labelling, Phipson & Smyth 2010). Two-sided p is twice the smaller one-sided p, capped at 1
    (3 vs 3 fully separated models: 2/20 = 0.1).

    Args:
        group_a: ``(M_a,)`` per-model means, or an ``(M_a, V)`` table reduced by the mean over volumes.
        group_b: the same for group b.
        n_resamples: Monte-Carlo relabelings when enumeration is too large.
        seed: seed of the Monte-Carlo draws.
        max_exact: largest number of relabelings enumerated exactly.

    Returns:
        ``{"test", "statistic" (mean a − mean b), "p", "exact", "n_relabelings", "n_a", "n_b"}``.

    Raises:
        ValueError: a group has no finite model mean.
    """
    x, y = _model_means(group_a), _model_means(group_b)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"each group needs at least one model, got {x.size} and {y.size}")
    total = math.comb(x.size + y.size, x.size)
    exact = total <= max_exact
    res = sps.permutation_test((x, y), lambda u, v, axis: np.mean(u, axis=axis) - np.mean(v, axis=axis),
                               permutation_type="independent", vectorized=True,
                               n_resamples=np.inf if exact else n_resamples, alternative="two-sided",
                               rng=np.random.default_rng(seed))
    return {"test": "permutation test over models (difference in mean)", "statistic": float(res.statistic),
            "p": float(res.pvalue), "exact": exact, "n_relabelings": total if exact else int(n_resamples),
            "n_a": int(x.size), "n_b": int(y.size)}


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (Holm 1979), controlling the family-wise error rate.

    Sorted ascending, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``, returned in the input order.
    NaN p-values stay NaN and do not count towards ``m``. Hand-written: scipy.stats offers only
    Benjamini–Hochberg (``false_discovery_control``).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p.ravel()))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p.ravel()[ok], kind="stable")]
    m = ok.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p.ravel()[order])
    flat = out.ravel()
    flat[order] = np.maximum.accumulate(scaled)
    return flat.reshape(p.shape)


def tost_equivalence(values_or_models: np.ndarray, margin: float = 0.02, alpha: float = 0.05) -> dict:
    """Two one-sided t-tests (Schuirmann 1987) that the group's mean lies within ``±margin``.

    Unit: a 1-D input is taken as independent units (e.g. per-volume AI of one group, or per-model means
    when seed spread is the question); a 2-D ``(M, V)`` table is first averaged over models per volume
    (:func:`volume_means`), so the volume is the unit, as in the paired Wilcoxon test. Why t-tests: with
    10–100 volumes the mean is close to normal, and TOST with t-tests is the standard, exactly
    ``α``-level procedure (Lakens 2017); it equals asking whether the ``1 − 2α`` t-interval lies inside
    ``±margin``. Caveat: with the volume as unit the model-to-model spread is not in the error term;
    pass per-model means for a claim about the training recipe.

    ``p_lower`` tests ``H0: μ ≤ −margin`` against ``μ > −margin``, ``p_upper`` tests ``H0: μ ≥ +margin``
    against ``μ < +margin``; ``p = max`` of the two and ``equivalent`` is ``p < alpha``.

    Returns:
        ``{"test", "unit", "n", "mean", "ci" (1 − 2α t-interval), "p_lower", "p_upper", "p", "equivalent",
        "margin", "alpha"}``; p-values NaN and not equivalent with fewer than 2 finite units.

    Raises:
        ValueError: ``margin`` ≤ 0 or ``alpha`` outside (0, 0.5).
    """
    if margin <= 0 or not 0 < alpha < 0.5:
        raise ValueError(f"need margin > 0 and 0 < alpha < 0.5, got margin={margin}, alpha={alpha}")
    data = np.asarray(values_or_models, dtype=np.float64)
    unit = "volume (mean over the group's models)" if data.ndim == 2 else "given values"
    x = _finite(volume_means(data) if data.ndim == 2 else data)
    out = {"test": "TOST, two one-sided one-sample t-tests", "unit": unit, "n": int(x.size),
           "mean": float(x.mean()) if x.size else math.nan, "ci": (math.nan, math.nan), "p_lower": math.nan,
           "p_upper": math.nan, "p": math.nan, "equivalent": False, "margin": float(margin), "alpha": float(alpha)}
    if x.size < 2:
        return out
    if np.ptp(x) == 0:  # no spread: the t statistic is infinite, each one-sided test is decided by the mean
        p_lower, p_upper = float(x[0] <= -margin), float(x[0] >= margin)
        out["ci"] = (float(x[0]), float(x[0]))
    else:
        p_lower = float(sps.ttest_1samp(x, -margin, alternative="greater").pvalue)
        p_upper = float(sps.ttest_1samp(x, margin, alternative="less").pvalue)
        ci = sps.ttest_1samp(x, 0.0).confidence_interval(confidence_level=1 - 2 * alpha)
        out["ci"] = (float(ci.low), float(ci.high))
    p = max(p_lower, p_upper)
    out.update(p_lower=p_lower, p_upper=p_upper, p=p, equivalent=bool(p < alpha))
    return out
