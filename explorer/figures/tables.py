"""Statistics tables from a ``summary`` (summary.json): one row per model, one row per model comparison.

Column names are plain ASCII so the CSV export opens cleanly everywhere; offsets appear as ``-1``, ``0``, ``+1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ._style import offset_values, summary_models


def _offset_column(prefix: str, offset: int) -> str:
    return f"{prefix} {offset:+d}" if offset else f"{prefix} 0"


def stats_table(summary: Mapping) -> pd.DataFrame:
    """One row per model: strategy, Dice, mean shares, first-conv shares, AI [95% CI], Wilcoxon p, z-flip Dice.

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
                    "Wilcoxon p": entry.get("wilcoxon_p"), "z-flip Dice": entry.get("zflip_dice")})
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
        entries (e.g. the number of paired slices); an empty table with those columns when there are none.
    """
    summary_models(summary)  # validates the summary's shape
    base = ["model A", "model B", "test", "statistic", "p"]
    rows = []
    for comp in summary.get("comparisons") or []:
        row = {"model A": comp.get("a"), "model B": comp.get("b"), "test": comp.get("test"),
               "statistic": comp.get("statistic"), "p": comp.get("p")}
        row.update({k: v for k, v in comp.items() if k not in ("a", "b", "test", "statistic", "p")})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(dict.fromkeys(base + [k for r in rows for k in r])))
