"""Shares, asymmetry indices and the tests on them (definitions: docs/definitions.md).

Shapes: ``masses`` and ``shares`` are ``(S, C)`` with channel ``i`` = offset ``offsets[i]``; rows of skipped
slices are NaN and are left out of every statistic. The CI of a mean share is a seeded percentile bootstrap
(``scipy.stats.bootstrap``) of the mean; the CI of a mean asymmetry index is a circular block bootstrap over
the slices (:func:`explorer.stats.cohort.moving_block_bootstrap_ci`), because neighbouring slices correlate, and
its p-value is the block sign-flip test with the same block length
(:func:`explorer.stats.cohort.block_sign_flip_test`), so that p and interval agree. Between two models on the same
slices, p-values are Holm-adjusted across the model pairs. Seeds, resamples and block lengths are recorded in the
summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from .cohort import block_sign_flip_test, default_block_length, holm, moving_block_bootstrap_ci

__all__ = [
    "BOOTSTRAP_SEED",
    "BOOTSTRAP_RESAMPLES",
    "TEST_RESAMPLES",
    "P_TEST",
    "shares_from_masses",
    "pair_columns",
    "innermost_pair",
    "asymmetry_index",
    "split_asymmetry",
    "mass_weighted_asymmetry",
    "mass_weighted_split",
    "asymmetry_test",
    "edge_trim_means",
    "split_summary",
    "mean_ci",
    "ai_ci",
    "dice",
    "dice_per_slice",
    "model_summary",
    "compare_abs_ai",
    "compare_models",
    "with_holm",
]


BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
TEST_RESAMPLES = 9999
P_TEST = "block sign-flip test of the mean over slices, blocks of the block bootstrap's length"


def shares_from_masses(masses: np.ndarray) -> np.ndarray:
    """``s[z, i] = m[z, i] / Σ_j m[z, j]``; rows with NaN or zero total mass become NaN."""
    masses = np.asarray(masses, dtype=np.float64)
    total = masses.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = masses / total
    shares[~(np.isfinite(total[:, 0]) & (total[:, 0] > 0))] = np.nan
    return shares


def pair_columns(offsets: Sequence[int], k: int) -> tuple[int, int]:
    """Column indices of offsets ``-k`` and ``+k``."""
    offsets = list(offsets)
    return offsets.index(-k), offsets.index(k)


def innermost_pair(offsets: Sequence[int]) -> int:
    """The smallest positive offset ``k`` (1 for ``-1,0,1``; 2 for ``-2,0,2``): the pair the headline AI uses."""
    return min(int(o) for o in offsets if o > 0)


def asymmetry_index(shares: np.ndarray, offsets: Sequence[int], k: int | None = None) -> np.ndarray:
    """``AI_k[z] = (s[z,-k] - s[z,+k]) / (s[z,-k] + s[z,+k])`` per slice (NaN where undefined); ``k`` defaults
    to the innermost pair (:func:`innermost_pair`), so offset sets that skip 1 work too."""
    lo, hi = pair_columns(offsets, innermost_pair(offsets) if k is None else k)
    a, b = shares[:, lo], shares[:, hi]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a - b) / (a + b)


def split_asymmetry(
    masses: np.ndarray,
    reversed_masses: np.ndarray,
    offsets: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice channel and anatomy asymmetry of the innermost pair (docs/definitions.md, "The split").

    With R the channel reversal and AI in *channel* coordinates, ``channel = (AI(x) + AI(Rx)) / 2`` (the
    network's directional preference: exactly 0 when ``f∘R = f``) and ``anatomy = (AI(x) − AI(Rx)) / 2`` (the
    scan's own z-asymmetry: exactly 0 when ``x_{z−1} = x_{z+1}``).

    Args:
        masses: ``(S, C)`` masses of the windows as they are.
        reversed_masses: ``(S, C)`` masses of the reversed windows, mapped back to offsets (as
            :func:`explorer.attribution.engine.attribute_stack` returns them with ``reverse=True``: column ``i`` is the
            channel that held offset ``offsets[i]``), NaN where not computed.
        offsets: the window offsets.

    Returns:
        ``(channel, anatomy)``, each ``(S,)``, NaN where either pass skipped the slice.
    """
    ai = asymmetry_index(shares_from_masses(masses), offsets)
    # mapped back to offsets, the reversed pass's AI is minus its AI in channel coordinates
    ai_reversed_channels = -asymmetry_index(shares_from_masses(reversed_masses), offsets)
    return (ai + ai_reversed_channels) / 2, (ai - ai_reversed_channels) / 2


def mass_weighted_asymmetry(masses: np.ndarray, offsets: Sequence[int], k: int | None = None) -> float | None:
    """One volume's mass-weighted asymmetry ``Σ_z (m[z,−k] − m[z,+k]) / Σ_z (m[z,−k] + m[z,+k])``.

    Sums run over the slices whose masses are all finite; ``k`` defaults to the innermost pair. Beside the mean of
    per-slice ratios (the AI) it weighs each slice by its attribution mass, so edge slices with little mass (whose
    ratios are noisy) count little. None when the denominator is not positive.
    """
    m = np.asarray(masses, dtype=np.float64)
    lo, hi = pair_columns(offsets, innermost_pair(offsets) if k is None else k)
    rows = m[np.isfinite(m).all(axis=1)]
    denom = float(rows[:, lo].sum() + rows[:, hi].sum())
    return float((rows[:, lo].sum() - rows[:, hi].sum()) / denom) if denom > 0 else None


def mass_weighted_split(
    masses: np.ndarray,
    reversed_masses: np.ndarray,
    offsets: Sequence[int],
) -> tuple[float | None, float | None]:
    """Mass-weighted channel and anatomy asymmetry: :func:`split_asymmetry`'s half-sum and half-difference of
    :func:`mass_weighted_asymmetry` of the windows as they are and (in channel coordinates) of the reversed
    windows, over the slices both passes attributed."""
    m, r = np.asarray(masses, np.float64), np.asarray(reversed_masses, np.float64)
    both = np.isfinite(m).all(axis=1) & np.isfinite(r).all(axis=1)
    plain = mass_weighted_asymmetry(m[both], offsets)
    flipped = mass_weighted_asymmetry(r[both], offsets)
    if plain is None or flipped is None:
        return None, None
    return (plain - flipped) / 2, (plain + flipped) / 2


def asymmetry_test(values: np.ndarray, block_length: int, *, seed: int = BOOTSTRAP_SEED) -> dict:
    """``{"p", "p_min"}`` of :func:`explorer.stats.cohort.block_sign_flip_test` (mean 0) with the block bootstrap's
    block length; None where no slice is finite."""
    res = block_sign_flip_test(values, block_length=block_length or None, n_resamples=TEST_RESAMPLES, seed=seed)
    return {
        "p": res["p"] if np.isfinite(res["p"]) else None,
        "p_min": res["p_min"] if np.isfinite(res["p_min"]) else None,
    }


def edge_trim_means(values: np.ndarray, max_trim: int) -> np.ndarray:
    """Mean of one volume's per-slice values after dropping ``t`` finite slices at each end, for ``t = 0 …
    max_trim``: how much the edge slices move the mean. ``(max_trim + 1,)``, NaN once nothing is left."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    return np.array([x[t : x.size - t].mean() if x.size > 2 * t else np.nan for t in range(max_trim + 1)])


def split_summary(
    masses: np.ndarray, reversed_masses: np.ndarray | None, offsets: Sequence[int], *, seed: int = BOOTSTRAP_SEED
) -> dict:
    """``{"channel_asymmetry": {...}, "anatomy_asymmetry": {...}}``, each ``{"mean", "ci95",
    "block_length", "n_slices", "p", "p_min", "mass_weighted"}`` with the block-bootstrap CI of :func:`ai_ci`, the
    block sign-flip p of :func:`asymmetry_test` and :func:`mass_weighted_split`; both None (and ``"split":
    "skipped"``) when the reversed windows were not attributed."""
    if reversed_masses is None:
        return {
            "channel_asymmetry": None,
            "anatomy_asymmetry": None,
            "split": "skipped: the reversed windows were not attributed (--no-reverse)",
        }
    out: dict = {"split": "computed"}
    weighted = mass_weighted_split(masses, reversed_masses, offsets)
    for name, values, w in zip(
        ("channel_asymmetry", "anatomy_asymmetry"),
        split_asymmetry(masses, reversed_masses, offsets),
        weighted,
        strict=True,
    ):
        mean, ci, block = ai_ci(values, seed=seed)
        out[name] = {
            "mean": mean,
            "ci95": ci,
            "block_length": block,
            "n_slices": int(np.isfinite(values).sum()),
            **asymmetry_test(values, block, seed=seed),
            "mass_weighted": w,
        }
    return out


def mean_ci(
    values: np.ndarray,
    *,
    seed: int = BOOTSTRAP_SEED,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float | None, list[float | None]]:
    """Mean of the finite ``values`` and its 95% percentile-bootstrap CI (None where undefined)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, [None, None]
    mean = float(v.mean())
    if v.size < 2 or np.ptp(v) == 0:
        return mean, [mean, mean]
    res = sps.bootstrap(
        (v,),
        np.mean,
        confidence_level=0.95,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
        vectorized=True,
    )
    return mean, [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def ai_ci(
    values: np.ndarray,
    *,
    seed: int = BOOTSTRAP_SEED,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float | None, list[float | None], int]:
    """Mean of one volume's per-slice AI and its 95% circular block-bootstrap CI over the slices.

    Args:
        values: ``(S,)`` per-slice values in slice order, NaN for skipped slices.
        seed, n_resamples: of the bootstrap.

    Returns:
        ``(mean, [lo, hi], block_length)`` with the block length from
        :func:`explorer.stats.cohort.default_block_length`; None (and block length 0) with no finite value.
    """
    mean, (lo, hi), block = moving_block_bootstrap_ci(values, n_boot=n_resamples, seed=seed)
    if not np.isfinite(mean):
        return None, [None, None], 0
    return mean, [lo, hi], block


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|P∩T| / (|P| + |T|)``; 1.0 when both are empty."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else float(2 * np.logical_and(p, t).sum() / denom)


def dice_per_slice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice of each slice of ``(S, H, W)`` stacks (NaN where both are empty)."""
    p, t = pred.reshape(len(pred), -1).astype(bool), truth.reshape(len(truth), -1).astype(bool)
    denom = p.sum(1) + t.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * (p & t).sum(1) / denom, np.nan)


def model_summary(masses: np.ndarray, offsets: Sequence[int], *, seed: int = BOOTSTRAP_SEED) -> dict:
    """Mean share per offset (with CI), AI per pair (with CI, block sign-flip p and its minimum), the
    mass-weighted AI.

    Returns:
        ``{"mean_share": {off: v}, "mean_share_ci95": {off: [lo, hi]}, "asymmetry_index": {"mean", "ci95", "p",
        "p_min", "mass_weighted"}, "asymmetry_by_pair": {k: {"mean", "ci95", "block_length", "p", "p_min",
        "mass_weighted"}}, "n_slices", "n_skipped", "bootstrap", "test"}`` where the top-level AI is the innermost
        pair's (``(-1, +1)``, or ``(-2, +2)`` for ``-2,0,2``); AI CIs are block-bootstrap CIs over the slices
        (:func:`ai_ci`) and p the block sign-flip test with the same block length (:func:`asymmetry_test`).
    """
    shares = shares_from_masses(masses)
    valid = np.isfinite(shares).all(axis=1)
    out: dict = {
        "mean_share": {},
        "mean_share_ci95": {},
        "n_slices": int(valid.sum()),
        "n_skipped": int((~valid).sum()),
    }
    for i, off in enumerate(offsets):
        mean, ci = mean_ci(shares[valid, i], seed=seed)
        out["mean_share"][str(off)] = mean
        out["mean_share_ci95"][str(off)] = ci
    pairs = {}
    for k in sorted(o for o in offsets if o > 0):
        values = np.where(valid, asymmetry_index(shares, offsets, k), np.nan)
        mean, ci, block = ai_ci(values, seed=seed)
        pairs[str(k)] = {
            "mean": mean,
            "ci95": ci,
            "block_length": block,
            **asymmetry_test(values, block, seed=seed),
            "mass_weighted": mass_weighted_asymmetry(np.where(valid[:, None], masses, np.nan), offsets, k),
        }
    inner = pairs[str(innermost_pair(offsets))]
    out["asymmetry_index"] = {key: inner[key] for key in ("mean", "ci95", "p", "p_min", "mass_weighted")}
    out["asymmetry_by_pair"] = pairs
    out["bootstrap"] = {
        "seed": seed,
        "resamples": BOOTSTRAP_RESAMPLES,
        "confidence": 0.95,
        "method": "circular block bootstrap over slices (asymmetry index); percentile bootstrap (mean shares)",
        "block_length": inner["block_length"],
    }
    out["test"] = {
        "method": P_TEST,
        "block_length": inner["block_length"],
        "resamples": TEST_RESAMPLES,
        "seed": seed,
        "exact_up_to_blocks": 16,
    }
    return out


def compare_abs_ai(ai_a: np.ndarray, ai_b: np.ndarray, *, seed: int = BOOTSTRAP_SEED) -> dict:
    """Paired test between two models on the same slices: block sign-flip test of the per-slice differences
    ``|AI_a| − |AI_b|`` of the innermost pair, blocks of the block bootstrap's length for that series.

    Args:
        ai_a: per-slice AI of model a ``(S,)`` (NaN for skipped slices).
        ai_b: the same for model b.
        seed: of the Monte-Carlo sign patterns.

    Returns:
        ``{"mean_abs_ai": [a, b], "statistic", "statistic_kind", "effect_size", "effect_size_kind", "n", "p",
        "p_min", "block_length", "test"}`` over the ``n`` slices valid for both models: the statistic is the
        mean difference ``|AI_a| − |AI_b|`` (what the test tests against 0), the effect size Cohen's d_z of the
        differences (their mean over their SD; None below 2 slices or with SD 0). ``p_holm`` is added by
        :func:`compare_models`.
    """
    a, b = np.abs(np.asarray(ai_a, np.float64)), np.abs(np.asarray(ai_b, np.float64))
    ok = np.isfinite(a) & np.isfinite(b)
    d = np.where(ok, a - b, np.nan)
    block = default_block_length(d) if ok.any() else 0
    sd = float(d[ok].std(ddof=1)) if ok.sum() >= 2 else 0.0
    return {
        "mean_abs_ai": [float(a[ok].mean()), float(b[ok].mean())] if ok.any() else [None, None],
        "statistic": float(d[ok].mean()) if ok.any() else None,
        "statistic_kind": "mean of |AI_a| − |AI_b|",
        "effect_size": float(d[ok].mean()) / sd if sd > 0 else None,
        "effect_size_kind": "Cohen's d_z (mean / SD of the per-slice differences)",
        "n": int(ok.sum()),
        **asymmetry_test(d, block, seed=seed),
        "block_length": block,
        "test": "block sign-flip test of per-slice |AI_a| − |AI_b| (innermost pair), Holm-adjusted across model pairs",
    }


def compare_models(ais: dict[str, np.ndarray], *, seed: int = BOOTSTRAP_SEED) -> list[dict]:
    """:func:`compare_abs_ai` for every pair of models (in the given order), with ``p_holm``: Holm's adjustment
    across the model pairs (one family per analysis)."""
    names = list(ais)
    return with_holm(
        [
            {"models": [na, nb], **compare_abs_ai(ais[na], ais[nb], seed=seed)}
            for i, na in enumerate(names)
            for nb in names[i + 1 :]
        ]
    )


def with_holm(comparisons: list[dict]) -> list[dict]:
    """The comparisons with ``p_holm``: Holm's adjustment of their ``p`` as one family (None where p is None)."""
    adjusted = holm(np.array([np.nan if c.get("p") is None else c["p"] for c in comparisons], dtype=float))
    return [{**c, "p_holm": float(p) if np.isfinite(p) else None} for c, p in zip(comparisons, adjusted, strict=True)]
