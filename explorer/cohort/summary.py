"""Group-level statistics of a cohort (DESIGN.md section 10) from its per-pair table.

A group is the checkpoints of one strategy (its models, seeds as replicates); a group's table is ``(M, V)``,
row = model, column = subject, in the same subject order for every group. All numbers come from
:mod:`explorer.cohort_stats`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .. import cohort_stats as cs

N_BOOT = 2000
SEED = 0


def group_tables(rows: pd.DataFrame, column: str) -> dict[str, pd.DataFrame]:
    """``{strategy: (models × subjects) table of column}`` over the rows without error (NaN where missing)."""
    ok = rows[rows["error"].isna()] if "error" in rows else rows
    subjects = list(dict.fromkeys(rows["subject"]))
    out = {}
    for strategy, part in ok.groupby("strategy", sort=False):
        table = part.pivot_table(index="model", columns="subject", values=column, aggfunc="first", dropna=False)
        out[str(strategy)] = table.reindex(columns=subjects).astype(float)
    return out


def summarise(rows: pd.DataFrame, *, margin: float = 0.02) -> dict:
    """``groups``, ``comparisons`` (Holm-adjusted over all reported tests) and ``equivalence``.

    Args:
        rows: ``cohort.csv``'s rows (``subject, model, strategy, channel_asymmetry, asymmetry_index, dice,
            held_out, share_<offset>..., error``); the statistics use :func:`primary_endpoint`.
        margin: equivalence margin of the group AI (TOST).

    Returns:
        ``{"endpoint", "groups": {strategy: {..., ENDPOINT: {"mean", "ci95"}}}, "comparisons": [...],
        "equivalence": {strategy: {...}}}``.
    """
    endpoint = primary_endpoint(rows)
    ai = group_tables(rows, endpoint)
    held = rows.assign(dice=rows["dice"].where(rows["held_out"].astype(bool)) if "held_out" in rows else rows["dice"])
    dice = group_tables(held, "dice") if held["dice"].notna().any() else {}
    share_columns = [c for c in rows if c.startswith("share_")]
    shares = {c: group_tables(rows, c) for c in share_columns}
    groups = {}
    for name, table in ai.items():
        mean, ci = cs.hierarchical_bootstrap_ci(table.to_numpy(), n_boot=N_BOOT, seed=SEED)
        entry = {"strategy": name, "n_models": int(table.notna().any(axis=1).sum()),
                 "n_volumes": int(table.notna().any(axis=0).sum()), "models": list(table.index),
                 "endpoint": endpoint, endpoint: {"mean": mean, "ci95": list(ci)},
                 "mean_share": {c.removeprefix("share_"): float(shares[c][name].mean(axis=1).mean())
                                for c in share_columns},
                 "dice": None}
        if name in dice and np.isfinite(dice[name].to_numpy()).any():
            d_mean, d_ci = cs.hierarchical_bootstrap_ci(dice[name].to_numpy(), n_boot=N_BOOT, seed=SEED)
            entry["dice"] = {"mean": d_mean, "ci95": list(d_ci),
                             "n_volumes": int(dice[name].notna().any(axis=0).sum()), "held_out": True}
        groups[name] = entry
    return {"endpoint": endpoint, "groups": groups, "comparisons": comparisons(ai),
            "equivalence": {name: _equivalence(t, margin) for name, t in ai.items()}}


def primary_endpoint(rows: pd.DataFrame) -> str:
    """``channel_asymmetry`` (the network's own directional preference, docs/definitions.md) where the rows
    have it; ``asymmetry_index`` when the reversed windows were skipped (``--no-reverse``)."""
    ok = rows[rows["error"].isna()] if "error" in rows else rows
    has_split = "channel_asymmetry" in ok and len(ok) and ok["channel_asymmetry"].notna().all()
    return "channel_asymmetry" if has_split else "asymmetry_index"


def comparisons(tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Every pair of groups: paired Wilcoxon across volumes, and with ≥ 3 models each a permutation test over
    models; ``p_holm`` is Holm's adjustment over all the tests listed."""
    out = []
    for (a, ta), (b, tb) in itertools.combinations(tables.items(), 2):
        w = cs.paired_wilcoxon(cs.volume_means(ta.to_numpy()), cs.volume_means(tb.to_numpy()), n_boot=N_BOOT,
                               seed=SEED)
        out.append({"a": a, "b": b, "test": w["test"], "unit": "volume", "n": w["n"], "statistic": w["statistic"],
                    "p": w["p"], "effect_size": w["rank_biserial"], "effect_size_kind": "rank-biserial r",
                    "median_difference": w["median_difference"], "ci95": list(w["ci"]),
                    "ci95_of": "median difference a − b"})
        if len(ta) >= 3 and len(tb) >= 3:
            perm = cs.permutation_test_models(ta.to_numpy(), tb.to_numpy(), seed=SEED)
            out.append({"a": a, "b": b, "test": perm["test"], "unit": "model", "n": perm["n_a"] + perm["n_b"],
                        "statistic": perm["statistic"], "p": perm["p"], "effect_size": perm["statistic"],
                        "effect_size_kind": "difference in mean AI (a − b)", "ci95": [None, None],
                        "exact": perm["exact"]})
    adjusted = cs.holm(np.array([c["p"] for c in out], dtype=float))
    for c, p in zip(out, adjusted, strict=True):
        c["p_holm"] = float(p)
    return out


def _equivalence(table: pd.DataFrame, margin: float) -> dict:
    """TOST of a group's AI. With several models the unit is the model (its mean over volumes): a claim that a
    strategy removes the asymmetry is about the training recipe, so seed-to-seed spread must be in the error
    term (averaging models per volume first would hide it). With one model, the volume is the unit."""
    values = table.to_numpy()
    if values.shape[0] >= 2:
        values = np.nanmean(values, axis=1)
    res = cs.tost_equivalence(values, margin=margin)
    if values.ndim == 1:
        res["unit"] = "model (mean over volumes)"
    return {**res, "ci": list(res["ci"]), "claim": f"AI within ±{margin:g}" if res["equivalent"] else
            f"not shown to lie within ±{margin:g}"}
