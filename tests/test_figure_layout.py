"""Laid-out text of every figure, as exported: no two texts overlap and none is clipped.

Every figure the analysis, the diagnostics, the slice viewer and a cohort export is rendered to SVG by the
export path (kaleido + Chromium) with 1, 2, 4 and 8 checkpoints of long names, at its export size and at a
narrow 600 px width, and at the paper presets. The SVG is then opened in Chromium (playwright) and every
``<text>`` element's box is measured (SVG text has no width attribute, so boxes are measured rather than
estimated).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from test_cohort_figures import make_cohort

from explorer.models.strategies import STRATEGIES
from explorer.reporting import export
from explorer.reporting.figures import SliceLook, analysis_figures, slice_view_figure
from explorer.reporting.figures.cohort import cohort_figures
from explorer.reporting.figures.diagnostics import cam_figure, diagnostics_figures
from explorer.reporting.figures.style import TRACE_TYPES

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow  # about 120 SVG renders through kaleido, each measured in Chromium: 40 s on 2 cores


@pytest.fixture(scope="module", autouse=True)
def _static_export() -> None:
    """kaleido and Chromium, probed when the module's tests run: a probe at import started a Chromium in every
    pytest-xdist worker during collection (5 s each)."""
    available, message = export.static_export_status()
    if not available:
        pytest.skip(f"needs kaleido and Chromium: {message}")


OFFSETS = (-1, 0, 1)
COUNTS = (1, 2, 4, 8)
EXPECTED = {
    "share_distribution_box",
    "share_distribution_violin",
    "share_along_axis",
    "edge_sensitivity",
    "first_conv_share",
    "background_attention",
    "logit_histograms",
    "cam_background",
    "sanity_check",
    "slice_view",
    "cam",
    "cohort_forest",
    "cohort_paired",
    "cohort_shares",
}
SLACK_PX = 1.0  # boxes may touch: glyph boxes include line spacing
#: Grids of image panels drawn at their own width (one panel per channel and checkpoint); not narrowed.
FIXED_WIDTH = {"slice_view"}
MEASURE_JS = """
(markup) => {
  document.body.style.margin = '0';
  document.body.innerHTML = markup;
  const svg = document.querySelector('svg');
  const origin = svg.getBoundingClientRect();
  const k = svg.viewBox.baseVal && svg.viewBox.baseVal.width ? origin.width / svg.viewBox.baseVal.width : 1;
  const box = (r) => [(r.left - origin.left) / k, (r.top - origin.top) / k, (r.right - origin.left) / k,
                      (r.bottom - origin.top) / k];  // in layout pixels, whatever the export scale
  const texts = [];
  svg.querySelectorAll('text').forEach((t, i) => {
    const r = t.getBoundingClientRect();
    if (!t.textContent.trim() || r.width === 0 || r.height === 0) return;
    const legend = t.closest('.legend');
    const clip = legend ? box(legend.querySelector('rect.bg').getBoundingClientRect()) : null;
    const group = t.closest('g[class]');
    texts.push({id: i, text: t.textContent, kind: (t.getAttribute('class') || '') + '@' +
                (group ? group.getAttribute('class') : ''), box: box(r), clip: clip});
  });
  return {width: origin.width / k, height: origin.height / k, texts: texts};
}
"""


def checkpoint_names(n: int) -> list[str]:
    """``n`` long zoo-style names cycling through the strategies, two seeds each."""
    strategies = list(STRATEGIES)
    return [f"unet-mobilenet_v2-{strategies[i % len(strategies)]}-seed-{i // len(strategies) + 1}" for i in range(n)]


def strategy_of(name: str) -> str:
    return max((s for s in STRATEGIES if f"-{s}-seed" in name), key=len)


def make_inputs(n: int) -> dict:
    """Shares, summary, diagnostics tables and slice arrays for ``n`` checkpoints, shaped as the engine's."""
    rng = np.random.default_rng(n)
    names = checkpoint_names(n)
    rows, slices, hists = [], [], []
    models, sanity = {}, {}
    edges = np.linspace(-12, 12, 41)
    for k, name in enumerate(names):
        share = rng.dirichlet([30, 40, 20 + 5 * k], size=40)
        rows += [
            dict(model=name, slice=z, offset=o, share=share[z, j])
            for z in range(40)
            if z != 7
            for j, o in enumerate(OFFSETS)
        ]
        models[name] = {
            "strategy": strategy_of(name),
            "mean_share": dict(zip(OFFSETS, share.mean(0), strict=True)),
            "asymmetry_index": {
                "mean": 0.12 - 0.03 * k,
                "ci95": [0.1 - 0.03 * k, 0.14 - 0.03 * k],
                "p": 10.0 ** -(k + 2),
                "p_min": 1e-4,
            },
            "dice": 0.8,
            "zflip_dice": 0.93,
            "n_slices": 39,
            "n_skipped": 1,
            "first_conv_share": {-1: 0.32, 0: 0.45, 1: 0.23},
        }
        frame = pd.DataFrame({"model": name, "slice": range(40)})
        for o in (*OFFSETS, "total"):
            frame[f"background_{o}"] = rng.uniform(0.1, 0.6, 40)
        frame["cam_background_standard"], frame["cam_background_abs"] = rng.uniform(0, 1, (2, 40))
        slices.append(frame)
        for g, group in enumerate(("foreground", "background", "foreground_train", "foreground_heldout")):
            hists.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "group": group,
                        "bin_left": edges[:-1],
                        "bin_right": edges[1:],
                        "count": np.exp(-((edges[:-1] - 4 + 8 * (g == 1)) ** 2) / 8) * 1e4 + 1,
                    }
                )
            )
        sanity[name] = {
            "rank_correlation": {"head": 0.8, "decoder": 0.4, "encoder": 0.1},
            "threshold": 0.5,
            "flagged": k == 0,
        }
    comparisons = [
        {"a": a, "b": b, "test": "wilcoxon |AI|", "statistic": 12.0, "p": 3e-5}
        for a, b in itertools.combinations(names, 2)
    ][:6]
    summary = {"models": models, "comparisons": comparisons}
    tables = {
        "slices": pd.concat(slices, ignore_index=True),
        "logit_histograms": pd.concat(hists, ignore_index=True),
        "sanity": sanity,
    }
    image = rng.normal(size=(48, 40)).astype(np.float32)
    maps = {name: rng.uniform(0, 1, (3, 48, 40)).astype(np.float32) for name in names}
    return dict(shares=pd.DataFrame(rows), summary=summary, tables=tables, image=image, maps=maps, names=names)


@functools.cache
def every_figure(n: int) -> dict[str, go.Figure]:
    """Every exported figure for ``n`` checkpoints: the analysis' and diagnostics' report figures, the slice
    viewer as the app draws it (orientation letters, anatomy under the maps), the Grad-CAM panels, and the
    cohort figures of a cohort of ``n + 1`` subjects.

    Built once per count (seconds of pandas and plotly for 8 checkpoints) and shared by the tests of every size
    and preset; callers export copies (``go.Figure(fig)``, :func:`explorer.reporting.export.apply_preset`) and
    never change these."""
    d = make_inputs(n)
    figs = {**analysis_figures(d["shares"], d["summary"]), **diagnostics_figures(d["tables"], d["summary"])}
    figs["slice_view"] = slice_view_figure(
        d["image"],
        mask=d["image"] > 1,
        maps=d["maps"],
        offsets=OFFSETS,
        predictions={m: d["image"] > 0.5 for m in d["names"]},
        look=SliceLook(
            orientation=("L", "R", "A", "P"), map_opacity=0.7, title="Slice 20: occlusion attribution per input channel"
        ),
    )
    figs.update(cohort_figures(*make_cohort(n_subjects=n + 1)))
    figs["cam"] = cam_figure(d["image"], {m: np.stack([d["image"], d["image"]]) for m in d["names"]}, layer="decoder")
    return figs


def layout_problems(layout: dict) -> list[str]:
    """Texts outside the viewport or their legend box, and pairs of different texts whose boxes intersect."""
    problems = []
    width, height = layout["width"], layout["height"]
    texts = layout["texts"]
    for t in texts:
        x0, y0, x1, y1 = t["box"]
        if x0 < -SLACK_PX or y0 < -SLACK_PX or x1 > width + SLACK_PX or y1 > height + SLACK_PX:
            problems.append(f"clipped by the figure edge: {t['text']!r} at {[round(v) for v in t['box']]}")
        clip = t["clip"]
        if clip and (
            x0 < clip[0] - SLACK_PX or y0 < clip[1] - SLACK_PX or x1 > clip[2] + SLACK_PX or y1 > clip[3] + SLACK_PX
        ):
            problems.append(f"clipped by the legend box: {t['text']!r}")
    for a, b in itertools.combinations(texts, 2):
        overlap_x = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
        overlap_y = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
        if overlap_x > SLACK_PX and overlap_y > SLACK_PX:
            problems.append(f"overlap: {a['text']!r} ({a['kind']}) and {b['text']!r} ({b['kind']})")
    return problems


@pytest.fixture(scope="module")
def page():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        yield browser.new_page()
        browser.close()


def measure(page, fig: go.Figure, preset: str = "screen") -> dict:
    svg = export.figure_bytes(fig, "svg", preset=preset).decode("utf-8")
    return page.evaluate(MEASURE_JS, svg)


@pytest.mark.parametrize("n", COUNTS)
def test_no_text_overlaps_or_is_clipped_at_the_export_size_and_narrow(page, n):
    problems = []
    for name, fig in every_figure(n).items():
        narrow = [] if name in FIXED_WIDTH else [("600 px", go.Figure(fig).update_layout(width=600))]
        for label, variant in (("export size", fig), *narrow):
            problems += [f"{name} ({label}): {p}" for p in layout_problems(measure(page, variant))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("preset", ["paper-single", "paper-double"])
@pytest.mark.parametrize("n", (1, 8))
def test_no_text_overlaps_or_is_clipped_in_the_paper_presets(page, n, preset):
    problems = []
    for name, fig in every_figure(n).items():
        if name not in FIXED_WIDTH:
            problems += [f"{name}: {p}" for p in layout_problems(measure(page, fig, preset))]
    assert not problems, "\n".join(problems)


def test_every_exported_figure_is_checked():
    """The analysis (``explorer analyze``), diagnostics, slice-viewer and cohort (``explorer cohort``) figures."""
    assert set(every_figure(2)) == EXPECTED


def test_the_template_styles_every_trace_type_drawn():
    """The shared template keeps ``simple_white``'s trace styles for :data:`style.TRACE_TYPES` only."""
    drawn = {trace.type for n in COUNTS for fig in every_figure(n).values() for trace in fig.data}
    assert drawn <= set(TRACE_TYPES), drawn - set(TRACE_TYPES)


def test_the_checker_sees_an_overlap(page):
    """A legend drawn over the title (the old distribution layout) is caught."""
    fig = go.Figure([go.Bar(x=[1], y=[1], name=f"checkpoint number {i}") for i in range(4)])
    fig.update_layout(
        title=dict(text="A title under the legend", x=0.5, xanchor="center", y=0.95),
        legend=dict(orientation="h", x=0.5, xanchor="center", y=1.1, yanchor="bottom"),
        margin=dict(t=60),
        width=500,
        height=300,
    )
    problems = layout_problems(measure(page, fig))
    assert any("overlap" in p and "title" in p.lower() for p in problems), problems
