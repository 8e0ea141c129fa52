"""Cohort figures inspected as objects, on a cohort whose summary comes from :func:`explorer.cohort.summary.summarise`
(the function ``explorer cohort`` calls): a shared template, the forest plot's legend and equivalence band,
paired lines spread per subject, offsets with a true minus sign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.cohort.summary import summarise
from explorer.reporting.figures.cohort import MODEL_ROW, cohort_figures
from explorer.reporting.figures.style import STRATEGY_COLOURS, TEMPLATE

LEVELS = {"imagenet": 0.12, "imagenet-uniform": 0.0, "random": 0.01}


def make_cohort(n_subjects: int = 6, n_models: int = 3) -> tuple[pd.DataFrame, dict]:
    """``cohort.csv``-shaped rows (strategies at known levels, a little noise) and their real summary."""
    rng = np.random.default_rng(0)
    rows = []
    for strategy, level in LEVELS.items():
        for m in range(n_models):
            for v in range(n_subjects):
                share = rng.dirichlet([30 + 60 * level, 40, 30 - 60 * level])
                rows.append(
                    {
                        "subject": f"sub-{v:02d}",
                        "volume": f"/srv/data/sub-{v:02d}.nii.gz",
                        "model": f"unet-{strategy}-s{m}",
                        "strategy": strategy,
                        "seed": m,
                        "asymmetry_index": level + rng.normal(0, 0.01),
                        "dice": np.nan,
                        "error": None,
                        "share_-1": share[0],
                        "share_0": share[1],
                        "share_1": share[2],
                    }
                )
    frame = pd.DataFrame(rows)
    return frame, summarise(frame, margin=0.05)


def test_cohort_figures_share_the_template_and_the_strategy_hues():
    rows, summary = make_cohort()
    figs = cohort_figures(rows, summary)
    assert set(figs) == {"cohort_forest", "cohort_paired", "cohort_shares"}
    for fig in figs.values():
        assert fig.layout.template.layout.paper_bgcolor == "white" and fig.layout.meta["title"]
    assert TEMPLATE == "explorer"
    boxes = [t for t in figs["cohort_shares"].data if isinstance(t, go.Box)]
    assert [b.line.color for b in boxes] == [STRATEGY_COLOURS[s] for s in LEVELS]
    assert set(boxes[0].x) == {"−1", "0", "+1"}  # U+2212, as on every other figure


def test_the_forest_plot_explains_its_marks_and_draws_the_equivalence_band():
    rows, summary = make_cohort()
    fig = cohort_figures(rows, summary)["cohort_forest"]
    legend = [t.name for t in fig.data if t.showlegend is not False and t.x == (None,)]
    assert legend == ["equivalence margin ±0.05", "group mean, 95% CI", "one model's mean over volumes"]
    (band,) = [s for s in fig.layout.shapes if s.type == "rect"]
    assert (band.x0, band.x1) == (-0.05, 0.05)
    diamonds = [t for t in fig.data if t.marker.symbol == "diamond" and t.x != (None,)]
    assert [d.x[0] for d in diamonds] == [summary["groups"][s]["asymmetry_index"]["mean"] for s in LEVELS]
    models = [t for t in fig.data if t.name.endswith("(models)")]
    assert [t.y[0] for t in models] == [i + MODEL_ROW for i in range(3)]  # under the diamond, not inside it
    assert len(models[0].x) == 3


def test_paired_lines_spread_subjects_and_draw_their_mean():
    rows, summary = make_cohort(n_subjects=6)
    fig = cohort_figures(rows, summary)["cohort_paired"]
    subjects = [t for t in fig.data if t.name.startswith("sub-")]
    assert len(subjects) == 6 and len({t.x[0] for t in subjects}) == 6  # side by side, not on top of each other
    (mean,) = [t for t in fig.data if t.name == "mean over subjects"]
    expected = rows.groupby(["subject", "strategy"])["asymmetry_index"].mean().unstack()[list(LEVELS)].mean()
    np.testing.assert_allclose(mean.y, expected.to_numpy())


def test_the_cohort_table_shows_file_names_not_server_paths():
    from explorer.reporting.figures.tables import cohort_rows_table

    rows, _ = make_cohort(n_subjects=2, n_models=1)
    shown = cohort_rows_table(rows)
    assert list(shown["volume"][:2]) == ["sub-00.nii.gz", "sub-01.nii.gz"]
    assert rows["volume"][0] == "/srv/data/sub-00.nii.gz"  # the data themselves are left alone
