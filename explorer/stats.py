"""Shares, asymmetry indices and the tests on them (definitions: docs/definitions.md).

Shapes: ``masses`` and ``shares`` are ``(S, C)`` with channel ``i`` = offset ``offsets[i]``; rows of skipped
slices are NaN and are left out of every statistic. The CI of a mean share is a seeded percentile bootstrap
(``scipy.stats.bootstrap``) of the mean; the CI of a mean asymmetry index is a circular block bootstrap over
the slices (:func:`explorer.cohort_stats.moving_block_bootstrap_ci`), because neighbouring slices correlate.
Seeds, resamples and block lengths are recorded in the summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from .cohort_stats import moving_block_bootstrap_ci

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000


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


def split_asymmetry(masses: np.ndarray, reversed_masses: np.ndarray, offsets: Sequence[int],
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice channel and anatomy asymmetry of the innermost pair (docs/definitions.md, "The split").

    With R the channel reversal and AI in *channel* coordinates, ``channel = (AI(x) + AI(Rx)) / 2`` (the
    network's directional preference: exactly 0 when ``f∘R = f``) and ``anatomy = (AI(x) − AI(Rx)) / 2`` (the
    scan's own z-asymmetry: exactly 0 when ``x_{z−1} = x_{z+1}``).

    Args:
        masses: ``(S, C)`` masses of the windows as they are.
        reversed_masses: ``(S, C)`` masses of the reversed windows, mapped back to offsets (as
            :func:`explorer.engine.attribute_stack` returns them with ``reverse=True``: column ``i`` is the
            channel that held offset ``offsets[i]``), NaN where not computed.
        offsets: the window offsets.

    Returns:
        ``(channel, anatomy)``, each ``(S,)``, NaN where either pass skipped the slice.
    """
    ai = asymmetry_index(shares_from_masses(masses), offsets)
    # mapped back to offsets, the reversed pass's AI is minus its AI in channel coordinates
    ai_reversed_channels = -asymmetry_index(shares_from_masses(reversed_masses), offsets)
    return (ai + ai_reversed_channels) / 2, (ai - ai_reversed_channels) / 2


def split_summary(masses: np.ndarray, reversed_masses: np.ndarray | None, offsets: Sequence[int], *,
                  seed: int = BOOTSTRAP_SEED) -> dict:
    """``{"channel_asymmetry": {...}, "anatomy_asymmetry": {...}}``, each ``{"mean", "ci95",
    "block_length", "n_slices"}`` with the block-bootstrap CI of :func:`ai_ci`; both None (and ``"split":
    "skipped"``) when the reversed windows were not attributed."""
    if reversed_masses is None:
        return {"channel_asymmetry": None, "anatomy_asymmetry": None,
                "split": "skipped: the reversed windows were not attributed (--no-reverse)"}
    out: dict = {"split": "computed"}
    for name, values in zip(("channel_asymmetry", "anatomy_asymmetry"),
                            split_asymmetry(masses, reversed_masses, offsets), strict=True):
        mean, ci, block = ai_ci(values, seed=seed)
        out[name] = {"mean": mean, "ci95": ci, "block_length": block, "n_slices": int(np.isfinite(values).sum())}
    return out


def mean_ci(values: np.ndarray, *, seed: int = BOOTSTRAP_SEED, n_resamples: int = BOOTSTRAP_RESAMPLES,
            ) -> tuple[float | None, list[float | None]]:
    """Mean of the finite ``values`` and its 95% percentile-bootstrap CI (None where undefined)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None, [None, None]
    mean = float(v.mean())
    if v.size < 2 or np.ptp(v) == 0:
        return mean, [mean, mean]
    res = sps.bootstrap((v,), np.mean, confidence_level=0.95, n_resamples=n_resamples, method="percentile",
                        random_state=np.random.default_rng(seed), vectorized=True)
    return mean, [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def ai_ci(values: np.ndarray, *, seed: int = BOOTSTRAP_SEED, n_resamples: int = BOOTSTRAP_RESAMPLES,
          ) -> tuple[float | None, list[float | None], int]:
    """Mean of one volume's per-slice AI and its 95% circular block-bootstrap CI over the slices.

    Args:
        values: ``(S,)`` per-slice values in slice order, NaN for skipped slices.
        seed, n_resamples: of the bootstrap.

    Returns:
        ``(mean, [lo, hi], block_length)`` with the block length from
        :func:`explorer.cohort_stats.default_block_length`; None (and block length 0) with no finite value.
    """
    mean, (lo, hi), block = moving_block_bootstrap_ci(values, n_boot=n_resamples, seed=seed)
    if not np.isfinite(mean):
        return None, [None, None], 0
    return mean, [lo, hi], block


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (pairs with a NaN dropped).

    Returns 1.0 when every difference is zero and None with fewer than two pairs.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return None
    if np.all(a == b):
        return 1.0
    return float(sps.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


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
    """Mean share per offset (with CI), AI per pair (with CI) and the Wilcoxon p of each pair.

    Returns:
        ``{"mean_share": {off: v}, "mean_share_ci95": {off: [lo, hi]}, "asymmetry_index": {"mean",
        "ci95"}, "wilcoxon_p", "asymmetry_by_pair": {k: {"mean", "ci95", "block_length", "wilcoxon_p"}},
        "n_slices", "n_skipped", "bootstrap"}`` where the top-level AI and p are for the innermost pair
        (``(-1, +1)``, or ``(-2, +2)`` for ``-2,0,2``); AI CIs are block-bootstrap CIs over the slices (:func:`ai_ci`).
    """
    shares = shares_from_masses(masses)
    valid = np.isfinite(shares).all(axis=1)
    out: dict = {"mean_share": {}, "mean_share_ci95": {}, "n_slices": int(valid.sum()),
                 "n_skipped": int((~valid).sum())}
    for i, off in enumerate(offsets):
        mean, ci = mean_ci(shares[valid, i], seed=seed)
        out["mean_share"][str(off)] = mean
        out["mean_share_ci95"][str(off)] = ci
    pairs = {}
    for k in sorted(o for o in offsets if o > 0):
        lo, hi = pair_columns(offsets, k)
        mean, ci, block = ai_ci(np.where(valid, asymmetry_index(shares, offsets, k), np.nan), seed=seed)
        pairs[str(k)] = {"mean": mean, "ci95": ci, "block_length": block,
                         "wilcoxon_p": paired_wilcoxon(shares[valid, lo], shares[valid, hi])}
    inner = pairs[str(innermost_pair(offsets))]
    out["asymmetry_index"] = {"mean": inner["mean"], "ci95": inner["ci95"]}
    out["wilcoxon_p"] = inner["wilcoxon_p"]
    out["asymmetry_by_pair"] = pairs
    out["bootstrap"] = {"seed": seed, "resamples": BOOTSTRAP_RESAMPLES, "confidence": 0.95,
                        "method": "circular block bootstrap over slices (asymmetry index); percentile bootstrap "
                                  "(mean shares)", "block_length": inner["block_length"]}
    return out


def compare_abs_ai(ai_a: np.ndarray, ai_b: np.ndarray) -> dict:
    """Paired test between two models on the same slices: Wilcoxon signed-rank of per-slice ``|AI|`` of the
    innermost pair.

    Args:
        ai_a: per-slice AI of model a ``(S,)`` (NaN for skipped slices).
        ai_b: the same for model b.

    Returns:
        ``{"mean_abs_ai": [a, b], "wilcoxon_p", "n_slices", "test"}`` over slices valid for both models.
    """
    a, b = np.abs(np.asarray(ai_a, np.float64)), np.abs(np.asarray(ai_b, np.float64))
    ok = np.isfinite(a) & np.isfinite(b)
    return {
        "mean_abs_ai": [float(a[ok].mean()), float(b[ok].mean())] if ok.any() else [None, None],
        "wilcoxon_p": paired_wilcoxon(a[ok], b[ok]),
        "n_slices": int(ok.sum()),
        "test": "paired Wilcoxon signed-rank of per-slice |AI| (innermost pair)",
    }
