"""Statistics tables from a ``summary`` (summary.json): one row per model, one row per model comparison.

The tables hold numbers (for CSV and further analysis); :func:`format_table` turns one into the text a reader
sees (p-values as ``2.5e-09``, shares to 3 decimals) and :func:`table_caption` explains its columns in one
line each. Column names are plain ASCII so the CSV export opens cleanly everywhere; offsets appear as ``-1``,
``0``, ``+1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePath

import pandas as pd

from .style import ai_pairs, comparison_fields, display_names, offset_values, summary_models

__all__ = [
    "COLUMN_HELP",
    "stats_table",
    "comparison_table",
    "format_number",
    "format_table",
    "DISPLAY_GROUPS",
    "GROUP_PREFIXES",
    "COMPARISON_NOTES",
    "COMPARISON_SHOWN",
    "display_tables",
    "display_comparisons",
    "table_caption",
    "PATH_COLUMNS",
    "cohort_rows_table",
    "SHIFT_COLUMNS",
    "logit_shift_table",
]


#: What each column means, matched against column names (first match wins); used by :func:`table_caption`.
COLUMN_HELP: tuple[tuple[str, str], ...] = (
    (r"^model$", "full checkpoint name"),
    (r"^label$", "short label used in the figures' legends (strategy, seed)"),
    (r"^model [AB]$", "the two checkpoints compared"),
    (r"^strategy$", "first-convolution initialisation strategy"),
    (r"^Dice$", "Dice of the prediction with the mask over the volume"),
    (r"^mean share", "mean over slices of the channel's share of |attribution| (equal share = 1/channels)"),
    (
        r"mass-weighted$",
        "mass-weighted asymmetry sum(m(-k) - m(+k)) / sum(m(-k) + m(+k)) over the slices (each slice "
        "weighted by its attribution mass), beside the mean of per-slice ratios",
    ),
    (
        r"^AI ",
        "asymmetry index (s(-k) - s(+k)) / (s(-k) + s(+k)), mean over slices with its 95% bootstrap CI; "
        "> 0 favours the previous slice",
    ),
    (r"^p min", "the smallest p the block sign-flip test can give on this scan (2 / 2^blocks when exact)"),
    (
        r"^p( |$)",
        "block sign-flip test that the mean AI is 0: blocks of neighbouring slices, of the bootstrap's "
        "block length, change sign together (neighbouring slices are not independent)",
    ),
    (r"^z-flip Dice$", "Dice between predictions on the window and on the reversed window (1 = no direction)"),
    (r"^slices$", "slices analysed"),
    (r"^skipped slices$", "slices skipped (no predicted foreground for the target)"),
    (r"^first-conv share", "L1 share of the first convolution's kernels per input channel"),
    (r"^test$", "the paired test of per-slice |AI| between the two checkpoints"),
    (r"^statistic$", "the test statistic (for two checkpoints on one scan: the mean of |AI_A| - |AI_B| over slices)"),
    (r"^effect_size$", "effect size (for two checkpoints on one scan: Cohen's d_z of the per-slice differences)"),
    (r"^p_min$", "the smallest p the test can give with this many blocks of slices"),
    (r"^p_holm$", "p adjusted by Holm's method across every pair of checkpoints shown"),
    (r"^block_length$", "slices per block of the sign-flip test"),
    (r"^mean_abs_ai", "mean per-slice |AI| of checkpoint A / B"),
    (r"^n$", "number of paired slices"),
)


def _offset_column(prefix: str, offset: int) -> str:
    return f"{prefix} {offset:+d}" if offset else f"{prefix} 0"


def stats_table(summary: Mapping) -> pd.DataFrame:
    """One row per model: strategy, Dice, mean shares, channel and anatomy asymmetry [95% CI], AI [95% CI] and
    block sign-flip p with its minimum attainable p (every pair for windows wider than 3), mass-weighted AI,
    z-flip Dice, slices used and skipped, first-conv shares.

    Args:
        summary: the analysis summary (offset keys may be ints or JSON strings).

    Returns:
        A DataFrame in the summary's model order (``model`` = full name, ``label`` = the figures' short label);
        a value missing for one model (no mask → no Dice) is NaN, a column missing for every model is left out.

    Raises:
        InputError: the summary has no models or a non-integer offset key.
    """
    rows = []
    labels = display_names(summary_models(summary), summary)
    for name, entry in summary_models(summary).items():
        ai = entry.get("asymmetry_index") or {}
        ci = list(ai.get("ci95") or [None, None]) + [None, None]
        row: dict[str, object] = {
            "model": name,
            "label": labels[name],
            "strategy": entry.get("strategy"),
            "Dice": entry.get("dice"),
        }
        for off, value in offset_values(entry.get("mean_share"), f"summary: models.{name}.mean_share").items():
            row[_offset_column("mean share", off)] = value
        for key, label in (("channel_asymmetry", "channel asymmetry"), ("anatomy_asymmetry", "anatomy asymmetry")):
            split = entry.get(key) or {}
            split_ci = list(split.get("ci95") or [None, None]) + [None, None]
            row.update(
                {
                    f"{label} mean": split.get("mean"),
                    f"{label} CI95 low": split_ci[0],
                    f"{label} CI95 high": split_ci[1],
                }
            )
        row.update(
            {
                "channel asymmetry mass-weighted": (entry.get("channel_asymmetry") or {}).get("mass_weighted"),
                "AI mean": ai.get("mean"),
                "AI CI95 low": ci[0],
                "AI CI95 high": ci[1],
                "AI mass-weighted": ai.get("mass_weighted"),
                "p": ai.get("p"),
                "p min": ai.get("p_min"),
            }
        )
        for k, pair in list(ai_pairs(entry).items())[1:]:  # wider windows: the outer pairs too
            pair_ci = list(pair.get("ci95") or [None, None]) + [None, None]
            row.update(
                {
                    f"AI ±{k} mean": pair.get("mean"),
                    f"AI ±{k} CI95 low": pair_ci[0],
                    f"AI ±{k} CI95 high": pair_ci[1],
                    f"p ±{k}": pair.get("p"),
                    f"p min ±{k}": pair.get("p_min"),
                }
            )
        row.update(
            {
                "z-flip Dice": entry.get("zflip_dice"),
                "slices": entry.get("n_slices"),
                "skipped slices": entry.get("n_skipped"),
            }
        )
        for off, value in offset_values(
            entry.get("first_conv_share"), f"summary: models.{name}.first_conv_share"
        ).items():
            row[_offset_column("first-conv share", off)] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    numeric = [c for c in table.columns if c not in ("model", "label", "strategy")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table.dropna(axis=1, how="all")


def comparison_table(summary: Mapping) -> pd.DataFrame:
    """One row per between-model comparison: models A and B, the test, its statistic, effect size, n and p, then
    any extras.

    Returns:
        Columns ``model A, model B, test, statistic, effect_size, n, p`` followed by any further keys of the comparison
        entries (e.g. ``n_slices``; a per-model pair such as ``mean_abs_ai`` becomes ``mean_abs_ai A`` and
        ``mean_abs_ai B``); an empty table with those columns when there are none. Entries written as
        ``{"models": [a, b], "p": p}`` are read as well as ``{"a", "b", "p"}``.
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
    base = ["model A", "model B", "test", "statistic", "effect_size", "n", "p"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(base + [k for r in rows for k in r])))


def _signed(column: str) -> bool:
    """Columns of an asymmetry (AI, channel or anatomy asymmetry): shown with their sign, merged with their CI."""
    return column.startswith("AI ") or column.startswith(("channel asymmetry", "anatomy asymmetry"))


def format_number(value: object, column: str) -> str:
    """One cell as text: p-values in scientific notation with 2 significant digits (``2.5e-09``; ``< 1e-300``
    for an underflowed 0), counts as integers, AI with a sign, other numbers to 3 decimals; missing → ``""``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if not isinstance(value, (int, float)):
        return str(value)
    if re.match(r"^p( |_|$)", column):
        return "< 1e-300" if value == 0 else f"{value:.1e}"
    if column in ("slices", "skipped slices", "n", "n_slices") or column.startswith("n "):
        return f"{value:.0f}"
    if _signed(column):
        return f"{value:+.3f}"
    return f"{value:.3f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as text for display (``st.dataframe``, a report): every cell formatted by
    :func:`format_number`, each ``AI ... mean`` (and channel/anatomy asymmetry) with its CI low/high merged
    into ``... [95% CI]``.

    Returns:
        A DataFrame of strings with the same rows.
    """
    out = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith(("CI95 low", "CI95 high")):
            continue
        cells = table[column].map(lambda v, c=column: format_number(v, c))
        if _signed(column) and column.endswith(" mean"):
            base = column[: -len(" mean")]
            low, high = table.get(f"{base} CI95 low"), table.get(f"{base} CI95 high")
            if low is not None and high is not None:
                ci = [
                    f" [{format_number(a, column)}, {format_number(b, column)}]" if pd.notna(a) and pd.notna(b) else ""
                    for a, b in zip(low, high, strict=True)
                ]
                cells, column = cells + ci, f"{base} [95% CI]"
        out[column] = cells
    return out


#: The per-checkpoint table shown as narrow tables that fit the page, each a group of columns (first match wins;
#: a column matching none goes to the last group).
DISPLAY_GROUPS: tuple[tuple[str, str], ...] = (
    ("Asymmetry", r"^(channel asymmetry|anatomy asymmetry|AI( ±\d+)?) \[95% CI\]$|^p( min)?( ±\d+)?$"),
    ("Mean share of attribution per input channel (offset)", r"^mean share "),
    ("First-convolution L1 share per input channel (offset)", r"^first-conv share "),
    ("Quality and robustness", r"."),
)
#: Column-name prefixes that a group's title already says (``mean share −1`` shows as ``−1``).
GROUP_PREFIXES = ("mean share ", "first-conv share ")
#: Columns of a comparison that are the same on every row: said once, under the table.
COMPARISON_NOTES = ("test", "statistic_kind", "effect_size_kind")
#: The comparison columns shown, in order (the CSV has them all, with ``p_min`` and ``block_length``).
COMPARISON_SHOWN = (
    "model A",
    "model B",
    "mean_abs_ai A",
    "mean_abs_ai B",
    "statistic",
    "effect_size",
    "n",
    "p",
    "p_holm",
)


def display_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`stats_table` as the narrow tables a reader sees: formatted (:func:`format_table`), keyed by
    :data:`DISPLAY_GROUPS`' titles, each led by ``checkpoint`` (the figures' short label; ``model`` and
    ``strategy`` repeat it and are left out), offsets with a true minus sign; empty groups are left out."""
    shown = _true_minus(format_table(table), keep=("model", "label", "strategy"))
    shown = shown.drop(columns=[c for c in ("model", "strategy") if c in shown]).rename(columns={"label": "checkpoint"})
    shown.columns = [c.replace(" -", " \u2212") for c in shown.columns]
    rest = [c for c in shown.columns if c != "checkpoint"]
    out = {}
    for title, pattern in DISPLAY_GROUPS:
        columns = [c for c in rest if re.search(pattern, c)]
        rest = [c for c in rest if c not in columns]
        if columns:
            part = shown[["checkpoint", *columns]]
            out[title] = part.rename(
                columns=lambda c: next((c.removeprefix(p) for p in GROUP_PREFIXES if c.startswith(p)), c)
            )
    return out


def _true_minus(shown: pd.DataFrame, *, keep: tuple[str, ...]) -> pd.DataFrame:
    """Formatted numbers with a true minus sign (``−0.004``, ``1.0e−05``), as the figures draw them; the
    ``keep`` columns (names) are left as they are. The CSV files keep ASCII."""
    out = shown.copy()
    for column in out.columns:
        if column not in keep:
            out[column] = out[column].map(lambda v: re.sub(r"-(?=\d)", "\u2212", v) if isinstance(v, str) else v)
    return out


def display_comparisons(table: pd.DataFrame, summary: Mapping) -> tuple[pd.DataFrame, str]:
    """:func:`comparison_table` for a reader: the checkpoints by short label, the statistic, effect size, n and
    p-values formatted (:data:`COMPARISON_SHOWN`); the columns that repeat one text on every row
    (:data:`COMPARISON_NOTES`) are returned once as a footnote.

    Returns:
        ``(table, footnote)``; the footnote is ``""`` for an empty table.
    """
    labels = display_names(summary_models(summary), summary)
    notes = [
        f"{c.replace('_', ' ')}: {'; '.join(map(str, pd.unique(table[c].dropna())))}"
        for c in COMPARISON_NOTES
        if c in table and table[c].notna().any()
    ]
    shown = _true_minus(format_table(table[[c for c in COMPARISON_SHOWN if c in table]]), keep=("model A", "model B"))
    for column in ("model A", "model B"):
        if column in shown:
            shown[column] = table[column].map(lambda n: labels.get(n, n))
    return shown, "; ".join(notes)


def table_caption(table: pd.DataFrame) -> str:
    """One line per kind of column of ``table`` (as given or as formatted), saying what it holds."""
    lines, seen = [], set()
    for pattern, text in COLUMN_HELP:
        columns = [c for c in table.columns if c not in seen and re.match(pattern, c)]
        seen.update(columns)
        if columns:
            lines.append(f"{', '.join(columns)}: {text}.")
    return "\n".join(lines)


#: Columns of ``cohort.csv`` that hold file paths: shown by file name (an absolute path names the server's disk).
PATH_COLUMNS = ("volume", "mask")


def cohort_rows_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``cohort.csv``'s rows for display: paths (``volume``, ``mask``) reduced to their file names."""
    out = rows.copy()
    for column in PATH_COLUMNS:
        if column in out:
            out[column] = out[column].map(lambda v: PurePath(str(v)).name if isinstance(v, str) and v else v)
    return out


#: The logit-shift table's value columns: (column, key of the summary's ``logits.shift``, format).
SHIFT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mean fg logit, training slices", "train_mean", "+.3f"),
    ("mean fg logit, held-out slices", "heldout_mean", "+.3f"),
    ("shift (held-out - training)", "shift", "+.3f"),
    ("FN rate, training slices", "train_fn_rate", ".3f"),
    ("FN rate, held-out slices", "heldout_fn_rate", ".3f"),
)


def logit_shift_table(summary: Mapping) -> pd.DataFrame:
    """One row per checkpoint: the foreground's source and its logits' train → held-out shift, as text. Where a
    value was not computed, its cell says why (the summary's ``shift_skipped``, or no foreground pixels on those
    slices), so no cell is blank or ``None``.

    Raises:
        InputError: the summary has no models.
    """
    labels = display_names(summary_models(summary), summary)
    rows = []
    for name, entry in summary_models(summary).items():
        logits = entry.get("logits") or {}
        shift = logits.get("shift") or {}
        why = (
            f"not computed: {logits['shift_skipped']}"
            if logits.get("shift_skipped")
            else "not computed: no logit diagnostics in this summary"
            if not logits
            else "no foreground pixels on these slices"
        )
        row = {"checkpoint": labels[name], "foreground": logits.get("foreground") or "n/a"}
        for column, key, spec in SHIFT_COLUMNS:
            value = shift.get(key)
            row[column] = format(value, spec) if isinstance(value, (int, float)) else why
        rows.append(row)
    return pd.DataFrame(rows)
