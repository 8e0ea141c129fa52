"""Group-level statistics of a cohort (docs/cohort.md, "Statistics") from its per-pair table.

A group is the checkpoints of one strategy (its models, seeds as replicates); a group's table is ``(M, V)``,
row = model, column = subject, in the same subject order for every group. All numbers come from
:mod:`explorer.stats.cohort`. Every p-value of a run is one Holm family (``summary["family"]``) and carries the
design's minimum attainable p (``p_min``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import choices
from ..stats import cohort as cs

__all__ = [
    "N_BOOT",
    "SEED",
    "ALPHA",
    "POWER",
    "DEFAULT_MARGIN",
    "MARGIN_RATIONALE",
    "INTERVAL_METHOD",
    "group_tables",
    "summarise",
    "primary_endpoint",
    "comparisons",
    "holm_family",
]


N_BOOT = 2000
SEED = 0
ALPHA = 0.05
POWER = 0.8
DEFAULT_MARGIN = choices.DEFAULT_MARGIN
MARGIN_RATIONALE = (
    "fixed in advance, not from the data: |AI| below 0.05 is negligible, the rule of thumb every "
    "reader of this tool is given (explorer/app/explain.py: below 0.05 negligible, 0.05–0.2 modest, "
    "above 0.2 large); a fraction of a measured effect would make the margin depend on the data "
    "it judges"
)
INTERVAL_METHOD = (
    "t-interval over model means: each model's mean over the volumes is one unit, df = models − 1; "
    "a group of one model falls back to the t-interval over its volumes (df = volumes − 1), labelled"
)


def group_tables(rows: pd.DataFrame, column: str) -> dict[str, pd.DataFrame]:
    """``{strategy: (models × subjects) table of column}`` over the rows without error (NaN where missing)."""
    ok = rows[rows["error"].isna()] if "error" in rows else rows
    subjects = list(dict.fromkeys(rows["subject"]))
    out = {}
    for strategy, part in ok.groupby("strategy", sort=False):
        table = part.pivot_table(index="model", columns="subject", values=column, aggfunc="first", dropna=False)
        out[str(strategy)] = table.reindex(columns=subjects).astype(float)
    return out


def summarise(rows: pd.DataFrame, *, margin: float = DEFAULT_MARGIN, margin_rationale: str | None = None) -> dict:
    """``groups``, ``comparisons``, ``equivalence`` and the Holm ``family`` that adjusts every p of them.

    Args:
        rows: ``cohort.csv``'s rows (``subject, model, strategy, channel_asymmetry, asymmetry_index, dice,
            held_out, share_<offset>..., error``); the statistics use :func:`primary_endpoint`.
        margin: equivalence margin of the per-model |endpoint|.
        margin_rationale: why this margin; None: :data:`MARGIN_RATIONALE` for the default margin, "set by the
            user" otherwise.

    Returns:
        ``{"endpoint", "interval_method", "groups": {strategy: {..., ENDPOINT: {"mean", "ci95", "method", "df"},
        "model_means"}}, "comparisons": [...], "equivalence": {strategy: {...}}, "equivalence_margin": {"margin",
        "rationale"}, "family": {...}}``.
    """
    endpoint = primary_endpoint(rows)
    ai = group_tables(rows, endpoint)
    held = rows.assign(dice=rows["dice"].where(rows["held_out"].astype(bool)) if "held_out" in rows else rows["dice"])
    dice = group_tables(held, "dice") if held["dice"].notna().any() else {}
    weighted_column = f"{endpoint}_mass_weighted"
    weighted = group_tables(rows, weighted_column) if weighted_column in rows else {}
    share_columns = [c for c in rows if c.startswith("share_")]
    shares = {c: group_tables(rows, c) for c in share_columns}
    groups = {}
    for name, table in ai.items():
        entry = {
            "strategy": name,
            "n_models": int(table.notna().any(axis=1).sum()),
            "n_volumes": int(table.notna().any(axis=0).sum()),
            "models": list(table.index),
            "endpoint": endpoint,
            endpoint: _interval(table),
            "model_means": {str(m): _float(v) for m, v in table.mean(axis=1).items()},
            "mean_share": {c.removeprefix("share_"): float(shares[c][name].mean(axis=1).mean()) for c in share_columns},
            "dice": None,
        }
        if name in weighted:
            entry[weighted_column] = _interval(weighted[name])
        if name in dice and np.isfinite(dice[name].to_numpy()).any():
            entry["dice"] = {
                **_interval(dice[name]),
                "n_volumes": int(dice[name].notna().any(axis=0).sum()),
                "held_out": True,
            }
        groups[name] = entry
    comps = comparisons(ai)
    equivalence = {name: _equivalence(t, margin) for name, t in ai.items()}
    rationale = margin_rationale or (MARGIN_RATIONALE if margin == DEFAULT_MARGIN else "set by the user (--margin)")
    return {
        "endpoint": endpoint,
        "interval_method": INTERVAL_METHOD,
        "groups": groups,
        "comparisons": comps,
        "equivalence": equivalence,
        "equivalence_margin": {"margin": float(margin), "rationale": rationale},
        "family": holm_family(comps, equivalence),
    }


def primary_endpoint(rows: pd.DataFrame) -> str:
    """``channel_asymmetry`` (the network's own directional preference, docs/definitions.md) where the rows
    have it; ``asymmetry_index`` when the reversed windows were skipped (``--no-reverse``)."""
    ok = rows[rows["error"].isna()] if "error" in rows else rows
    has_split = "channel_asymmetry" in ok and len(ok) and ok["channel_asymmetry"].notna().all()
    return "channel_asymmetry" if has_split else "asymmetry_index"


def comparisons(tables: dict[str, pd.DataFrame]) -> list[dict]:
    """Every pair of groups: paired Wilcoxon across volumes, and with ≥ 3 models each a permutation test over
    models (with its minimum detectable difference); every test with its ``p_min``. ``p_holm`` is added by
    :func:`holm_family`."""
    out = []
    for (a, ta), (b, tb) in itertools.combinations(tables.items(), 2):
        w = cs.paired_wilcoxon(cs.volume_means(ta.to_numpy()), cs.volume_means(tb.to_numpy()), n_boot=N_BOOT, seed=SEED)
        out.append(
            {
                "a": a,
                "b": b,
                "test": w["test"],
                "unit": "volume",
                "n": w["n"],
                "statistic": w["statistic"],
                "p": w["p"],
                "p_min": w["p_min"],
                "effect_size": w["rank_biserial"],
                "effect_size_kind": "rank-biserial r",
                "median_difference": w["median_difference"],
                "ci95": list(w["ci"]),
                "ci95_of": "median difference a − b",
            }
        )
        if len(ta) >= 3 and len(tb) >= 3:
            perm = cs.permutation_test_models(ta.to_numpy(), tb.to_numpy(), seed=SEED)
            out.append(
                {
                    "a": a,
                    "b": b,
                    "test": perm["test"],
                    "unit": "model",
                    "n": perm["n_a"] + perm["n_b"],
                    "statistic": perm["statistic"],
                    "p": perm["p"],
                    "p_min": perm["p_min"],
                    "effect_size": perm["statistic"],
                    "effect_size_kind": "difference in mean AI (a − b)",
                    "ci95": [None, None],
                    "exact": perm["exact"],
                    "mde": _difference_mde(ta.mean(axis=1).to_numpy(), tb.mean(axis=1).to_numpy(), perm["p_min"]),
                }
            )
    return out


def holm_family(comps: list[dict], equivalence: dict[str, dict]) -> dict:
    """One Holm family per cohort run: every comparison (every strategy pair, both units) and every equivalence
    test it reports. Adds ``p_holm`` to each test in place (and sets each equivalence test's ``equivalent`` from
    its adjusted p) and returns the family's description."""
    tests = [*comps, *equivalence.values()]
    adjusted = cs.holm(np.array([t["p"] for t in tests], dtype=float))
    for t, p in zip(tests, adjusted, strict=True):
        t["p_holm"] = float(p)
    for name, e in equivalence.items():
        e["equivalent"] = bool(e["p_holm"] < ALPHA)
        e["claim"] = (
            f"removes the asymmetry: mean |AI| over models < {e['margin']:g} (Holm p {e['p_holm']:.3g})"
            if e["equivalent"]
            else f"{name}: not shown to lie within ±{e['margin']:g}"
        )
    return {
        "correction": "Holm (family-wise error rate)",
        "alpha": ALPHA,
        "size": int(np.isfinite(adjusted).sum()),
        "members": "every strategy pair's comparisons (volume and model units) and every strategy's equivalence "
        "test of this run, on the endpoint reported",
    }


def _interval(table: pd.DataFrame) -> dict:
    res = cs.model_mean_t_interval(table.to_numpy())
    return {"mean": res["mean"], "ci95": list(res["ci"]), "method": res["method"], "unit": res["unit"], "df": res["df"]}


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _difference_mde(a: np.ndarray, b: np.ndarray, p_min: float) -> float | None:
    """Difference in mean between two groups of models that a two-sided t-test (df = n_a + n_b − 2, pooled SD)
    detects with 80% power: ``(t_{1−α/2} + t_{0.8}) · s_p · √(1/n_a + 1/n_b)``; None when the design cannot reach
    α at all (``p_min ≥ α``) or the SD is undefined."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    df = a.size + b.size - 2
    if p_min >= ALPHA or df < 1:
        return None
    pooled = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df)
    return float((sps.t.ppf(1 - ALPHA / 2, df) + sps.t.ppf(POWER, df)) * pooled * math.sqrt(1 / a.size + 1 / b.size))


def _equivalence(table: pd.DataFrame, margin: float) -> dict:
    """Equivalence on magnitudes (:func:`explorer.stats.cohort.magnitude_equivalence`). With several models the
    unit is the model (its mean over volumes): a claim that a strategy removes the asymmetry is about the training
    recipe, so every seed must be near 0, not only their signed mean. With one model, the volume is the unit."""
    several = int(table.notna().any(axis=1).sum()) >= 2
    units = table.mean(axis=1).to_numpy() if several else table.to_numpy().ravel()
    res = cs.magnitude_equivalence(units, margin=margin, alpha=ALPHA, power=POWER)
    res["unit"] = "model (mean over volumes)" if several else "volume (one model)"
    return res
