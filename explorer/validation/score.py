"""Scoring recovered channel asymmetries against the planted direction (docs/validation.md).

A network trained on labels from slice ``z + d`` depends on offset ``d``. With the asymmetry index
``AI = (s_{-1} - s_{+1}) / (s_{-1} + s_{+1})``, ``d < 0`` expects ``channel_asymmetry > 0`` and ``d > 0``
expects ``< 0``; ``d = 0`` (centre-only task) has no expected sign and is reported as a value, and so has an
offset beyond the innermost pair (``d = ±2`` of ``-2..2``: the index compares the innermost pair). One network
*passes* when its sign is right and its per-network CI excludes 0. Over seeds, the mean comes with a
Student-t interval (``df = seeds - 1``; none with one seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..stats.scan import innermost_pair

__all__ = ["GROUP", "expected_sign", "network_score", "t_interval", "aggregate"]


#: Columns that identify one cell of the aggregated table.
GROUP = ["regime", "strategy", "direction", "method"]


def expected_sign(direction: int, offsets: Sequence[int]) -> int:
    """+1 for a planted previous slice (``d = -k``), -1 for a next slice (``d = +k``), with ``k`` the innermost
    pair of ``offsets`` (:func:`explorer.stats.scan.innermost_pair`); 0 (no expected sign) for any other ``d``."""
    return int(-np.sign(direction)) if abs(direction) == innermost_pair(offsets) else 0


def network_score(
    direction: int, offsets: Sequence[int], mean: float | None, ci95: Sequence[float | None]
) -> dict[str, object]:
    """``{"expected_sign", "sign_correct", "passed"}`` of one network's ``channel_asymmetry`` (None without an
    expected sign or with an undefined mean)."""
    expected = expected_sign(direction, offsets)
    if expected == 0 or mean is None or not math.isfinite(mean):
        return {"expected_sign": expected, "sign_correct": None, "passed": None}
    lo, hi = ci95
    excludes = lo is not None and hi is not None and (lo > 0 if expected > 0 else hi < 0)
    correct = bool(np.sign(mean) == expected)
    return {"expected_sign": expected, "sign_correct": correct, "passed": bool(correct and excludes)}


def t_interval(values: np.ndarray) -> tuple[float, float | None, float | None]:
    """Mean of the finite ``values`` and its 95 % Student-t interval (None bounds with fewer than two)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, None, None
    mean = float(v.mean())
    if v.size < 2:
        return mean, None, None
    half = float(sps.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per regime × strategy × direction × method: over seeds, the mean ``channel_asymmetry`` with its
    t-interval, the mean magnitude, sign accuracy and pass rate (NaN for ``d = 0``), the mean
    ``anatomy_asymmetry`` and the mean held-out and functional Dices."""
    dice_columns = [c for c in rows.columns if c.startswith("dice_")]
    out = []
    for key, group in rows.groupby(GROUP, sort=False):
        mean, lo, hi = t_interval(group["channel_asymmetry"].to_numpy(dtype=float))
        scored = group["sign_correct"].dropna()
        out.append(
            {
                **dict(zip(GROUP, key, strict=True)),
                "seeds": len(group),
                "channel_asymmetry": mean,
                "ci95_lo": lo,
                "ci95_hi": hi,
                "magnitude": float(group["channel_asymmetry"].abs().mean()),
                "sign_accuracy": float(scored.astype(float).mean()) if len(scored) else math.nan,
                "pass_rate": float(group["passed"].dropna().astype(float).mean()) if len(scored) else math.nan,
                "anatomy_asymmetry": float(group["anatomy_asymmetry"].mean()),
                "heldout_dice": float(group["heldout_dice"].mean()),
                **{c: float(group[c].mean()) for c in dice_columns},
            }
        )
    return pd.DataFrame(out)
