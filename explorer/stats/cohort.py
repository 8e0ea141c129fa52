"""Cohort statistics with the volume and the trained model as units of inference (docs/cohort.md, "Statistics").

Pure functions on numpy arrays: no I/O, no torch. Shapes:

- ``values``: ``(S,)`` per-slice numbers of one volume in slice order (e.g. ``AI_1[z]``), NaN for skipped slices;
- ``table``: ``(M, V)`` one group's per-volume numbers, row = model (a seed of one strategy), column =
  volume, the same volumes in the same column order for every model; NaN where a pair is missing;
- ``a``, ``b``: ``(V,)`` paired per-volume numbers of two groups (each the per-volume AI averaged over the
  group's models, see :func:`volume_means`).

Every resampling function takes a ``seed`` and gives identical results for identical inputs and seed.
Bootstrap CIs are percentile intervals; the group interval is a t-interval over model means. Every test
returns its p with ``p_min``, the smallest p the design can give (a permutation test over 3 vs 3 models cannot go
below 0.1). Where scipy.stats has the test it is used; the block bootstrap, the block sign-flip test and Holm's
correction are written here because scipy has only iid resampling and the Benjamini–Hochberg adjustment
(statsmodels is deliberately not a dependency).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

__all__ = [
    "lag1_autocorrelation",
    "default_block_length",
    "moving_block_bootstrap_ci",
    "volume_means",
    "model_mean_t_interval",
    "paired_wilcoxon",
    "permutation_test_models",
    "holm",
    "sign_flip_p_min",
    "block_sign_flip_test",
    "minimum_detectable_effect",
    "magnitude_equivalence",
]


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


def moving_block_bootstrap_ci(
    values: np.ndarray, block_length: int | None = None, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, tuple[float, float], int]:
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


def model_mean_t_interval(table: np.ndarray, level: float = 0.95) -> dict:
    """Group AI (mean over models of each model's mean over volumes) and its t-interval over the model means.

    The model (the seed of a training recipe) is the unit: ``m_i`` is model ``i``'s mean over the volumes, and the
    interval is ``m̄ ± t_{(1+level)/2, M−1} · s_m / √M`` with ``s_m`` the sample SD of the ``m_i``. Why: the seed
    spread is the largest variance component, and with every model measured on the same volumes the volume effect
    is common to all ``m_i``, so conditional on the volumes the interval is exact for normal seed effects (its
    target: the recipe's mean on these volumes). It covers 94–96% of the nominal 95% with 3, 5 and 10 models and a
    population of volumes too (``tests/test_coverage.py``); the hierarchical bootstrap it replaces covered 75% with
    3 models, because a percentile bootstrap over 3 values ignores the t quantile and the ``(M−1)/M`` shrinkage.

    With one model there is no seed spread to estimate: the interval falls back to the t-interval over that model's
    volumes (df = volumes − 1) and says so in ``method``.

    Args:
        table: ``(M, V)`` per-volume values, row = model, column = volume, NaN where missing (a model's mean uses
            its finite volumes).
        level: confidence level.

    Returns:
        ``{"mean", "ci" (lo, hi), "method", "unit", "n", "df"}``; the CI is NaN with fewer than 2 units, and the
        mean NaN when no value is finite.

    Raises:
        ValueError: ``table`` is not 2-D or ``level`` is outside (0, 1).
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"table must be 2-D (models × volumes), got shape {t.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    t = t[np.isfinite(t).any(axis=1)]
    if len(t) >= 2:
        units, method, unit = _nanmean(t, axis=1), "t-interval over model means (df = models − 1)", "model"
    else:
        units = _finite(t)
        method = "one model: t-interval over its volumes (df = volumes − 1); says nothing about seed spread"
        unit = "volume"
    n = int(units.size)
    out = {
        "mean": float(units.mean()) if n else math.nan,
        "ci": (math.nan, math.nan),
        "method": method,
        "unit": unit,
        "n": n,
        "df": n - 1 if n >= 2 else None,
    }
    if n >= 2:
        half = sps.t.ppf((1 + level) / 2, n - 1) * units.std(ddof=1) / math.sqrt(n)
        out["ci"] = (float(out["mean"] - half), float(out["mean"] + half))
    return out


def paired_wilcoxon(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired Wilcoxon signed-rank test across volumes, with effect sizes.

    ``scipy.stats.wilcoxon`` on ``d = a − b`` (zero differences dropped, Wilcoxon's method; exact null
    distribution for small samples without ties). Effect sizes: the matched-pairs rank-biserial correlation
    ``r = (W+ − W−) / (W+ + W−)`` over the non-zero differences (Kerby 2014; +1 when every a > b), and the
    median of ``d`` with a percentile bootstrap CI (``scipy.stats.bootstrap`` resampling pairs).

    Args:
        a: ``(V,)`` per-volume values of group a; ``b`` the same volumes for group b. Pairs with a NaN drop.
        n_boot, seed, level: of the median's bootstrap.

    Returns:
        ``{"test", "n", "statistic", "p", "p_min", "rank_biserial", "median_difference", "ci"}``; ``statistic``
        is scipy's two-sided ``min(W+, W−)``; ``p`` is 1 when every difference is zero and NaN with fewer
        than 2 pairs; ``p_min = min(1, 2 / 2^n)`` over the ``n`` non-zero differences (the exact two-sided
        signed-rank test's smallest p: all signs alike; 0.125 with 4 volumes).

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    out = {
        "test": "paired Wilcoxon signed-rank across volumes",
        "n": int(d.size),
        "statistic": math.nan,
        "p": math.nan,
        "p_min": math.nan,
        "rank_biserial": math.nan,
        "median_difference": math.nan,
        "ci": (math.nan, math.nan),
    }
    if d.size == 0:
        return out
    median = float(np.median(d))
    out["median_difference"] = median
    if np.ptp(d) == 0:
        out["ci"] = (median, median)
    else:
        res = sps.bootstrap(
            (d,),
            np.median,
            n_resamples=n_boot,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        out["ci"] = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    nonzero = d[d != 0]
    out["p_min"] = sign_flip_p_min(nonzero.size)
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


def permutation_test_models(
    group_a: np.ndarray, group_b: np.ndarray, n_resamples: int = 9999, seed: int = 0, max_exact: int = 20000
) -> dict:
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
        ``{"test", "statistic" (mean a − mean b), "p", "p_min", "exact", "n_relabelings", "n_a", "n_b"}``;
        ``p_min`` is ``min(1, 2 / C(n_a + n_b, n_a))`` when exact, else ``min(1, 2 / (n_resamples + 1))``.

    Raises:
        ValueError: a group has no finite model mean.
    """
    x, y = _model_means(group_a), _model_means(group_b)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"each group needs at least one model, got {x.size} and {y.size}")
    total = math.comb(x.size + y.size, x.size)
    exact = total <= max_exact
    res = sps.permutation_test(
        (x, y),
        lambda u, v, axis: np.mean(u, axis=axis) - np.mean(v, axis=axis),
        permutation_type="independent",
        vectorized=True,
        n_resamples=np.inf if exact else n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return {
        "test": "permutation test over models (difference in mean)",
        "statistic": float(res.statistic),
        "p": float(res.pvalue),
        "p_min": min(1.0, 2 / (total if exact else n_resamples + 1)),
        "exact": exact,
        "n_relabelings": total if exact else int(n_resamples),
        "n_a": int(x.size),
        "n_b": int(y.size),
    }


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


def sign_flip_p_min(n_units: int) -> float:
    """Smallest two-sided p of an exact sign-flip (or signed-rank) test over ``n_units`` independent units:
    ``min(1, 2 / 2^n)`` (only the observed signs and their negation are as extreme); NaN for no unit."""
    return math.nan if n_units < 1 else min(1.0, 2.0 / 2.0**n_units)


def block_sign_flip_test(
    values: np.ndarray,
    block_length: int | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
    max_exact_blocks: int = 16,
) -> dict:
    """Two-sided block sign-flip test that the mean of one volume's per-slice values is 0.

    The finite values (in slice order, skipped slices dropped as in :func:`moving_block_bootstrap_ci`) are cut
    into consecutive blocks of ``block_length`` slices (the last one shorter) and each block's sign is flipped as
    a whole; the statistic is the mean. Under H0 (the series is symmetric about 0 block by block) every sign
    pattern is equally likely, and keeping neighbouring slices together keeps their correlation, which a
    Wilcoxon test over slices would treat as independent evidence. The block length defaults to the block
    bootstrap's (:func:`default_block_length`), so the p and the interval printed beside it rest on the same
    dependence assumption. Written by hand: scipy's ``permutation_test`` has no blocked sign flips.

    With at most ``max_exact_blocks`` blocks all ``2^B`` patterns are enumerated and ``p = #{|T*| ≥ |T|} / 2^B``
    (``p_min = 2 / 2^B``); otherwise ``n_resamples`` random patterns are drawn and ``p = (1 + #{|T*| ≥ |T|}) /
    (n_resamples + 1)`` (Phipson & Smyth 2010; ``p_min = 1 / (n_resamples + 1)``).

    Args:
        values: ``(S,)`` per-slice values in slice order, NaN for skipped slices.
        block_length: slices per block; ``None`` uses :func:`default_block_length`.
        n_resamples: random sign patterns when enumeration is too large.
        seed: seed of ``numpy.random.default_rng`` for those draws.
        max_exact_blocks: largest number of blocks enumerated exactly.

    Returns:
        ``{"test", "statistic" (mean), "p", "p_min", "block_length", "n_blocks", "exact", "n"}``; ``p`` is 1 when
        every value is 0 and NaN (block length 0) with no finite value.

    Raises:
        ValueError: ``block_length`` < 1.
    """
    x = _finite(values)
    n = x.size
    b = (default_block_length(values) if block_length is None else int(block_length)) if n else 0
    if n and b < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    b = min(b, n)
    out = {
        "test": "block sign-flip test of the mean (blocks of the block bootstrap's length)",
        "statistic": float(x.mean()) if n else math.nan,
        "p": math.nan,
        "p_min": math.nan,
        "block_length": b,
        "n_blocks": 0,
        "exact": True,
        "n": int(n),
    }
    if n == 0:
        return out
    sums = np.add.reduceat(x, np.arange(0, n, b))
    n_blocks = sums.size
    observed = abs(sums.sum()) * (1 - 1e-12)  # ties with the observed pattern count, despite rounding
    if n_blocks <= max_exact_blocks:
        signs = 1.0 - 2.0 * ((np.arange(2**n_blocks)[:, None] >> np.arange(n_blocks)) & 1)
        p, p_min = float(np.mean(np.abs(signs @ sums) >= observed)), 2.0 / 2**n_blocks
    else:
        signs = np.where(np.random.default_rng(seed).random((n_resamples, n_blocks)) < 0.5, -1.0, 1.0)  # float: BLAS
        p = float((1 + np.sum(np.abs(signs @ sums) >= observed)) / (n_resamples + 1))
        p_min = 1.0 / (n_resamples + 1)
    out.update(p=min(1.0, p), p_min=min(1.0, p_min), n_blocks=int(n_blocks), exact=n_blocks <= max_exact_blocks)
    return out


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8, sides: int = 1) -> float:
    """Smallest shift a one-sample t-test over ``n`` units of SD ``sd`` detects with ``power``:
    ``(t_{1−α/sides, n−1} + t_{power, n−1}) · sd / √n`` (the usual approximation that ignores the noncentral
    t's skew). NaN with fewer than 2 units or a non-finite SD."""
    if n < 2 or not np.isfinite(sd):
        return math.nan
    return float((sps.t.ppf(1 - alpha / sides, n - 1) + sps.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def magnitude_equivalence(values: np.ndarray, margin: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """Equivalence test on magnitudes: is the mean ``|x|`` of the units below ``margin``?

    ``x`` are the units' signed values (per-model means of a group, or one model's per-volume values); the test is
    the one-sided one-sample t-test of ``H0: E|x| ≥ margin`` against ``E|x| < margin``. Why magnitudes: TOST on
    the mean *signed* value passes for seeds at +0.1 and −0.1 once there are enough of them, although no single
    model is free of asymmetry; the mean magnitude is small only when every unit is close to 0. It is TOST on
    ``|x|`` (Schuirmann 1987) whose lower test, ``E|x| > −margin``, holds by construction; it equals asking whether
    the one-sided ``1 − α`` upper t-bound of the mean magnitude lies below the margin. ``E|x|`` includes each
    unit's own estimation noise, so the test is conservative.

    ``mde`` is :func:`minimum_detectable_effect` for this design (``n`` units, the observed SD of ``|x|``, one
    sided): the test passes with ``power`` only when the true mean magnitude lies at least ``mde`` below the
    margin, i.e. at or below ``detectable_below = margin − mde`` (negative: this design cannot show removal).

    Returns:
        ``{"test", "n", "mean_abs", "upper" (one-sided 1 − α bound), "p", "p_min" (0: a t-test is continuous),
        "equivalent", "margin", "alpha", "mde", "detectable_below", "power"}``; p NaN and not equivalent with
        fewer than 2 finite units.

    Raises:
        ValueError: ``margin`` ≤ 0, ``alpha`` outside (0, 0.5) or ``power`` outside (0, 1).
    """
    if margin <= 0 or not 0 < alpha < 0.5 or not 0 < power < 1:
        raise ValueError(
            f"need margin > 0, 0 < alpha < 0.5 and 0 < power < 1, got margin={margin}, alpha={alpha}, power={power}"
        )
    x = np.abs(_finite(values))
    n = int(x.size)
    out = {
        "test": "one-sided t-test that the mean |value| lies below the margin (TOST on magnitudes)",
        "n": n,
        "mean_abs": float(x.mean()) if n else math.nan,
        "upper": math.nan,
        "p": math.nan,
        "p_min": 0.0,
        "equivalent": False,
        "margin": float(margin),
        "alpha": float(alpha),
        "mde": math.nan,
        "detectable_below": math.nan,
        "power": float(power),
    }
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    if sd == 0:  # no spread: the t statistic is infinite, the test is decided by the mean
        p, upper = float(x[0] >= margin), float(x[0])
    else:
        p = float(sps.ttest_1samp(x, margin, alternative="less").pvalue)
        upper = float(x.mean() + sps.t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n))
    mde = minimum_detectable_effect(sd, n, alpha=alpha, power=power, sides=1)
    out.update(upper=upper, p=p, equivalent=bool(p < alpha), mde=mde, detectable_below=float(margin - mde))
    return out
