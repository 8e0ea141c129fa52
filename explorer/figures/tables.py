"""Statistics tables from a ``summary`` (summary.json): one row per model, one row per model comparison.

Column names are plain ASCII so the CSV export opens cleanly everywhere; offsets appear as ``-1``, ``0``, ``+1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ._style import ai_pairs, comparison_fields, offset_values, summary_models


def _offset_column(prefix: str, offset: int) -> str:
    return f"{prefix} {offset:+d}" if offset else f"{prefix} 0"


def stats_table(summary: Mapping) -> pd.DataFrame:
    """One row per model: strategy, Dice, mean shares, AI [95% CI] and Wilcoxon p (every pair for windows wider
    than 3), z-flip Dice, slices used and skipped, first-conv shares.

    Args:
        summary: the analysis summary (offset keys may be ints or JSON strings).

    Returns:
        A DataFrame in the summary's model order; missing values (no mask → no Dice) are NaN.

    Raises:
        InputError: the summary has no models or a non-integer offset key.
    """
    rows = []
    for name, entry in summary_models(summary).items():
        ai = entry.get("asymmetry_index") or {}
        ci = list(ai.get("ci95") or [None, None]) + [None, None]
        row: dict[str, object] = {"model": name, "strategy": entry.get("strategy"), "Dice": entry.get("dice")}
        for off, value in offset_values(entry.get("mean_share"), f"summary: models.{name}.mean_share").items():
            row[_offset_column("mean share", off)] = value
        row.update({"AI mean": ai.get("mean"), "AI CI95 low": ci[0], "AI CI95 high": ci[1],
                    "Wilcoxon p": entry.get("wilcoxon_p")})
        for k, pair in list(ai_pairs(entry).items())[1:]:  # wider windows: the outer pairs too
            pair_ci = list(pair.get("ci95") or [None, None]) + [None, None]
            row.update({f"AI ±{k} mean": pair.get("mean"), f"AI ±{k} CI95 low": pair_ci[0],
                        f"AI ±{k} CI95 high": pair_ci[1], f"Wilcoxon p ±{k}": pair.get("wilcoxon_p")})
        row.update({"z-flip Dice": entry.get("zflip_dice"), "slices": entry.get("n_slices"),
                    "skipped slices": entry.get("n_skipped")})
        for off, value in offset_values(entry.get("first_conv_share"),
                                        f"summary: models.{name}.first_conv_share").items():
            row[_offset_column("first-conv share", off)] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c not in ("model", "strategy")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table


def comparison_table(summary: Mapping) -> pd.DataFrame:
    """One row per between-model comparison: models A and B, the test, its statistic and p, then any extras.

    Returns:
        Columns ``model A, model B, test, statistic, p`` followed by any further keys of the comparison
        entries (e.g. ``n_slices``; a per-model pair such as ``mean_abs_ai`` becomes ``mean_abs_ai A`` and
        ``mean_abs_ai B``); an empty table with those columns when there are none. Entries written as
        ``{"models": [a, b], "wilcoxon_p": p}`` are read as well as ``{"a", "b", "p"}``.
    """
    summary_models(summary)  # validates the summary's shape
    rows = []
    for comp in map(comparison_fields, summary.get("comparisons") or []):
        row = {"model A": comp.pop("a"), "model B": comp.pop("b")}
        for key, value in comp.items():  # a pair of values (one per model) becomes two columns
            if isinstance(value, (list, tuple)) and len(value) == 2:
                row.update({f"{key} A": value[0], f"{key} B": value[1]})
            else:
                row[key] = value
        rows.append(row)
    base = ["model A", "model B", "test", "statistic", "p"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(base + [k for r in rows for k in r])))
