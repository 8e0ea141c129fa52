"""Coverage of the group interval the cohort reports (:func:`explorer.stats.cohort.model_mean_t_interval`, the
interval :func:`explorer.cohort.summary.summarise` puts in ``cohort_summary.json``).

A seeded simulation of the crossed design a cohort has: every model (seed) of a recipe measured on the same
volumes, value = recipe mean 0 + seed effect N(0, 0.1) + volume effect N(0, 0.02) + residual N(0, 0.01), with
the seed and volume effects drawn afresh in every replicate. A nominal 95% interval must cover the recipe mean in
93–97% of replicates in every cell of 3, 5 and 10 models × 4 and 10 volumes. 2000 replicates per cell (the
binomial SE of a 95% coverage is then 0.5 points, so a cell at 94% is not failed by chance).
"""

from __future__ import annotations

import numpy as np
import pytest

from explorer.cohort.summary import summarise
from explorer.stats.cohort import model_mean_t_interval

REPLICATES = 2000
SEED_SD, VOLUME_SD, RESIDUAL_SD = 0.1, 0.02, 0.01


@pytest.mark.parametrize("n_models", [3, 5, 10])
@pytest.mark.parametrize("n_volumes", [4, 10])
def test_nominal_95_interval_covers_93_to_97_percent(n_models: int, n_volumes: int) -> None:
    rng = np.random.default_rng(1000 * n_models + n_volumes)
    tables = (
        rng.normal(0, SEED_SD, (REPLICATES, n_models, 1))
        + rng.normal(0, VOLUME_SD, (REPLICATES, 1, n_volumes))
        + rng.normal(0, RESIDUAL_SD, (REPLICATES, n_models, n_volumes))
    )
    covered = 0
    for table in tables:
        lo, hi = model_mean_t_interval(table)["ci"]
        covered += lo <= 0.0 <= hi
    assert 0.93 <= covered / REPLICATES <= 0.97


def test_the_cohort_summary_reports_this_interval() -> None:
    """The function tested above is the one behind a group's ``ci95`` in the cohort summary."""
    import pandas as pd

    table = np.random.default_rng(0).normal(0, 0.1, (3, 4))
    rows = pd.DataFrame(
        [
            {
                "subject": f"s{v}",
                "model": f"m{m}",
                "strategy": "g",
                "asymmetry_index": table[m, v],
                "dice": np.nan,
                "error": None,
            }
            for m in range(3)
            for v in range(4)
        ]
    )
    group = summarise(rows)["groups"]["g"]["asymmetry_index"]
    assert group["ci95"] == pytest.approx(list(model_mean_t_interval(table)["ci"]))
