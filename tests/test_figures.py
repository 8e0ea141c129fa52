"""Figures are inspected as objects: trace types and names, shared colour ranges, annotations, tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from explorer.errors import InputError
from explorer.io.volume import load_volume
from explorer.models.strategies import STRATEGIES
from explorer.reporting.figures import (
    STRATEGY_COLOURS,
    SliceLook,
    analysis_figures,
    comparison_table,
    display_names,
    distribution_figure,
    edge_sensitivity_figure,
    first_conv_figure,
    model_colours,
    share_along_axis_figure,
    slice_view_figure,
    stats_table,
)
from explorer.reporting.figures.tables import format_table, table_caption

MODELS = ("imagenet", "imagenet-uniform")
OFFSETS = (-1, 0, 1)
SKIPPED = (10, 11)


def make_shares(seed: int = 0, n_slices: int = 30) -> pd.DataFrame:
    """Shares of the engine's schema; imagenet favours the centre and the previous slice."""
    rng = np.random.default_rng(seed)
    base = {"imagenet": np.array([0.32, 0.45, 0.23]), "imagenet-uniform": np.array([1, 1, 1]) / 3}
    rows = []
    for model, mean in base.items():
        for z in range(n_slices):
            if z in SKIPPED:
                continue
            share = np.clip(mean + rng.normal(0, 0.02, 3), 0.01, None)
            share /= share.sum()
            rows += [
                dict(model=model, slice=z, offset=o, share=s, mass=100 * s) for o, s in zip(OFFSETS, share, strict=True)
            ]
    return pd.DataFrame(rows)


def make_summary() -> dict:
    """A summary.json after a JSON round trip: offset keys are strings."""
    summary = {
        "models": {
            "imagenet": {
                "strategy": "imagenet",
                "mean_share": {-1: 0.32, 0: 0.45, 1: 0.23},
                "asymmetry_index": {
                    "mean": 0.163,
                    "ci95": [0.15, 0.18],
                    "p": 2.5e-9,
                    "p_min": 1e-4,
                    "mass_weighted": 0.12,
                },
                "dice": 0.81,
                "first_conv_share": {-1: 0.32, 0: 0.45, 1: 0.23},
                "zflip_dice": 0.9,
            },
            "imagenet-uniform": {
                "strategy": "imagenet-uniform",
                "mean_share": {-1: 0.33, 0: 0.34, 1: 0.33},
                "asymmetry_index": {
                    "mean": -0.004,
                    "ci95": [-0.02, 0.01],
                    "p": 0.52,
                    "p_min": 1e-4,
                    "mass_weighted": -0.002,
                },
                "dice": None,
                "first_conv_share": {-1: 1 / 3, 0: 1 / 3, 1: 1 / 3},
                "zflip_dice": 0.99,
            },
        },
        "comparisons": [
            {"a": "imagenet", "b": "imagenet-uniform", "statistic": 3.0, "p": 4.2e-6, "test": "wilcoxon |AI|", "n": 28}
        ],
        "inputs": {"volume_sha256": "ab" * 32},
    }
    return json.loads(json.dumps(summary))


@pytest.fixture(scope="module")
def shares() -> pd.DataFrame:
    return make_shares()


@pytest.fixture(scope="module")
def summary() -> dict:
    return make_summary()


@pytest.mark.parametrize("kind, trace_type", [("violin", go.Violin), ("box", go.Box)])
def test_distribution_has_one_trace_per_model_over_every_offset(shares, summary, kind, trace_type):
    fig = distribution_figure(shares, summary, kind=kind)
    assert [type(t) for t in fig.data] == [trace_type, trace_type, go.Scatter]  # the last: equal-share legend
    assert fig.data[2].name == "equal share (1/3)"
    fig.data = fig.data[:2]
    assert [t.name for t in fig.data] == [
        "imagenet · AI +0.163 [+0.150, +0.180], p 2.5e−09",
        "imagenet-uniform · AI −0.004 [−0.020, +0.010], p 0.52",
    ]
    assert [t.legendgroup for t in fig.data] == list(MODELS)
    for trace, model in zip(fig.data, MODELS, strict=False):
        rows = shares[shares["model"] == model]
        assert list(trace.x) == [{-1: "−1", 0: "0", 1: "+1"}[o] for o in rows["offset"]]
        np.testing.assert_allclose(trace.y, rows["share"])
        assert trace.line.color == model_colours(MODELS)[model]
    assert fig.layout.xaxis.title.text == "offset (slices)"
    assert fig.layout.yaxis.title.text == "share of attribution"
    assert list(fig.layout.xaxis.categoryarray) == ["−1", "0", "+1"]


def test_distribution_carries_its_statistics_under_the_plot_not_on_it(shares, summary):
    fig = distribution_figure(shares, summary)
    assert not fig.layout.annotations
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y == 0  # under the plot, not over the title
    assert "AI [95% CI] and p" in fig.layout.title.subtitle.text
    assert distribution_figure(shares).data[0].name == "imagenet"  # no summary, no statistics


def test_the_box_marks_every_slice_and_the_mean_with_a_t_interval(shares, summary):
    box = distribution_figure(shares, summary, kind="box").data[0]
    assert box.boxpoints == "all" and box.boxmean == "sd"
    n = shares[shares.model == "imagenet"]["slice"].nunique()  # 28: 30 slices, 2 skipped
    assert n == 28 and box.sdmultiple == pytest.approx(2.0518 / np.sqrt(28), rel=1e-4)  # t(0.975, 27) / sqrt(n)


def test_colour_follows_strategy_and_seed_not_order_or_subset(shares, summary):
    reordered = {**summary, "models": dict(reversed(list(summary["models"].items())))}
    fig = distribution_figure(shares, reordered)
    assert [t.legendgroup for t in fig.data[:2]] == list(reversed(MODELS))
    assert fig.data[0].line.color == STRATEGY_COLOURS["imagenet-uniform"]
    alone = distribution_figure(shares[shares.model == "imagenet-uniform"])
    assert alone.data[0].line.color == STRATEGY_COLOURS["imagenet-uniform"]
    names = ["unet-x-imagenet-seed-1", "unet-x-imagenet-seed-2", "unet-x-imagenet-uniform-seed-1", "custom-net"]
    colours = model_colours(names)
    assert colours == model_colours(list(reversed(names)))  # same in any order
    assert model_colours(names[1:2]) == {names[1]: colours[names[1]]}  # and in any subset
    assert len(set(colours.values())) == 4
    assert set(STRATEGY_COLOURS) == set(STRATEGIES)  # every registered strategy has its fixed colour


def test_display_names_are_strategy_and_seed_with_the_full_name_in_hover(shares):
    names = ["unet-mobilenet_v2-imagenet-uniform-seed-2", "unet-mobilenet_v2-imagenet-seed-2", "my-model"]
    assert display_names(names) == {
        names[0]: "imagenet-uniform, seed 2",
        names[1]: "imagenet, seed 2",
        names[2]: "my-model",
    }
    summary = {"models": {"a": {"strategy": "random", "recipe": {"seed": 3}}, "b": {"strategy": "random"}}}
    assert display_names(["a", "b"], summary) == {"a": "random, seed 3", "b": "random"}
    clash = ["enc1-imagenet", "enc2-imagenet"]  # same strategy, no seed: fall back to distinct names
    assert len(set(display_names(clash).values())) == 2
    renamed = shares.replace({"model": {"imagenet": names[1]}})
    fig = distribution_figure(renamed)
    assert fig.data[0].name == "imagenet, seed 2" and names[1] in fig.data[0].hovertemplate


def test_unknown_kind_lists_the_valid_ones(shares):
    with pytest.raises(InputError, match="unknown distribution kind 'strip'.*box, violin"):
        distribution_figure(shares, kind="strip")


@pytest.mark.parametrize("drop", ["model", "share", "offset"])
def test_shares_without_a_required_column_is_refused(shares, drop):
    with pytest.raises(InputError, match=f"shares: missing column.*{drop}"):
        distribution_figure(shares.drop(columns=drop))


def test_share_along_axis_has_a_panel_per_offset_and_gaps_for_skipped_slices(shares):
    fig = share_along_axis_figure(shares)
    lines = [t for t in fig.data if t.legendgroup in MODELS]
    assert len(lines) == len(MODELS) * len(OFFSETS)
    assert {t.yaxis for t in lines} == {"y", "y2", "y3"}
    assert [t.showlegend for t in lines].count(True) == len(MODELS)
    first = fig.data[0]
    gaps = [x for x, y in zip(first.x, first.y, strict=False) if np.isnan(y)]
    assert gaps == list(SKIPPED)
    assert fig.layout.xaxis3.title.text == "slice index along the slicing axis"


def test_share_along_axis_for_one_offset(shares):
    fig = share_along_axis_figure(shares, offset=-1)
    assert [t.name for t in fig.data] == [*MODELS, "equal share (1/3)"]
    expected = shares[(shares.model == "imagenet") & (shares.offset == -1)].set_index("slice")["share"]
    got = pd.Series(fig.data[0].y, index=fig.data[0].x).dropna()
    np.testing.assert_allclose(got, expected.sort_index())
    with pytest.raises(InputError, match="unknown offset '2'"):
        share_along_axis_figure(shares, offset=2)


def test_first_conv_bars_per_offset_per_model_with_string_keys(summary):
    fig = first_conv_figure(summary)
    assert [type(t) for t in fig.data] == [go.Bar, go.Bar, go.Scatter]
    assert fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["−1", "0", "+1"]
    np.testing.assert_allclose(fig.data[0].y, [0.32, 0.45, 0.23])
    np.testing.assert_allclose(fig.data[1].y, [1 / 3] * 3)


def test_first_conv_needs_shares_for_every_model(summary):
    broken = json.loads(json.dumps(summary))
    del broken["models"]["imagenet"]["first_conv_share"]
    with pytest.raises(InputError, match="'imagenet' has no first_conv_share"):
        first_conv_figure(broken)
    assert "first_conv_share" not in analysis_figures(make_shares(), broken)


def test_stats_table_one_row_per_model(summary):
    table = stats_table(summary)
    assert list(table["model"]) == list(MODELS)
    assert table.loc[0, "mean share -1"] == pytest.approx(0.32)
    assert table.loc[0, "mean share +1"] == pytest.approx(0.23)
    assert table.loc[0, "AI CI95 low"] == pytest.approx(0.15)
    assert table.loc[0, "p"] == pytest.approx(2.5e-9) and table.loc[0, "p min"] == pytest.approx(1e-4)
    assert table.loc[1, "AI mass-weighted"] == pytest.approx(-0.002)
    assert np.isnan(table.loc[1, "Dice"])  # no mask for that model: NaN, not None
    assert table.loc[1, "first-conv share 0"] == pytest.approx(1 / 3)
    assert list(table["label"]) == list(MODELS)
    assert "skipped slices" not in table.columns  # no model has it: no empty column


def test_formatted_table_has_p_in_scientific_notation_and_a_caption(summary):
    summary = json.loads(json.dumps(summary))
    summary["models"]["imagenet-uniform"]["asymmetry_index"]["p"] = 1.234567e-13
    shown = format_table(stats_table(summary))
    assert list(shown["p"]) == ["2.5e-09", "1.2e-13"] and list(shown["p min"]) == ["1.0e-04", "1.0e-04"]
    assert list(shown["AI mass-weighted"]) == ["+0.120", "-0.002"]
    assert list(shown["AI [95% CI]"]) == ["+0.163 [+0.150, +0.180]", "-0.004 [-0.020, +0.010]"]
    assert "AI CI95 low" not in shown.columns and list(shown["Dice"]) == ["0.810", ""]
    assert not any("0.000000" in v for v in shown.to_numpy().ravel())
    caption = table_caption(shown)
    assert "p: block sign-flip test that the mean AI is 0" in caption and "Wilcoxon" not in caption
    assert all(c in caption for c in shown.columns)  # every column explained
    assert format_table(comparison_table(summary)).loc[0, "p"] == "4.2e-06"


def test_comparison_table(summary):
    table = comparison_table(summary)
    assert list(table.columns) == ["model A", "model B", "test", "statistic", "effect_size", "n", "p"]
    assert table.loc[0, "p"] == pytest.approx(4.2e-6)
    assert comparison_table({"models": summary["models"]}).empty


def test_bad_summary_is_refused():
    with pytest.raises(InputError, match="summary: no 'models' entry"):
        stats_table({"inputs": {}})
    with pytest.raises(InputError, match="offset key 'left'"):
        stats_table({"models": {"m": {"mean_share": {"left": 0.5}}}})


def test_analysis_figures_are_keyed_by_file_safe_names(shares, summary):
    figs = analysis_figures(shares, summary)
    assert set(figs) == {
        "share_distribution_violin",
        "share_distribution_box",
        "share_along_axis",
        "first_conv_share",
        "edge_sensitivity",
    }
    assert all(name.replace("_", "").isalnum() for name in figs)


def test_edge_sensitivity_is_the_trimmed_mean_against_the_slices_trimmed():
    """Known answer: AI 1 on the two edge slices and 0 inside; trimming one slice per end takes the mean from
    2/10 to 0. Without a channel_asymmetry column the AI comes from the shares (s−1 = 0.5, s+1 = 0.25: 1/3)."""
    channel = np.array([1.0] + [0.0] * 8 + [1.0])
    rows = [
        dict(model="m", slice=z, offset=o, share=1 / 3, mass=1.0, channel_asymmetry=channel[z])
        for z in range(10)
        for o in OFFSETS
    ]
    fig = edge_sensitivity_figure(pd.DataFrame(rows), max_trim=6)
    (line,) = [t for t in fig.data if t.name == "m"]
    assert list(line.x) == [0, 1, 2, 3, 4]  # 10 slices: 5 trimmed per end would leave none
    np.testing.assert_allclose(line.y, [0.2, 0, 0, 0, 0], atol=1e-12)
    assert "channel asymmetry" in fig.layout.yaxis.title.text
    plain = pd.DataFrame(
        [dict(model="m", slice=z, offset=o, share={-1: 0.5, 0: 0.25, 1: 0.25}[o]) for z in range(4) for o in OFFSETS]
    )
    (line,) = [t for t in edge_sensitivity_figure(plain).data if t.name == "m"]
    np.testing.assert_allclose(line.y, [1 / 3, 1 / 3])
    with pytest.raises(InputError, match="max_trim"):
        edge_sensitivity_figure(plain, max_trim=-1)


# ------------------------------------------------------------------------------------------ slice viewer


@pytest.fixture(scope="module")
def real_slice(sample_volume_path) -> np.ndarray:
    return np.rot90(load_volume(sample_volume_path).stack("axial")[40]).copy()


def _maps(image: np.ndarray, scales: dict[str, tuple[float, ...]], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        m: np.stack([rng.normal(0, s, image.shape) * image for s in sc]).astype(np.float32) for m, sc in scales.items()
    }


@pytest.mark.parametrize("signed", [False, True])
def test_slice_view_heatmaps_share_one_unnormalised_range(real_slice, signed):
    maps = _maps(real_slice, {"imagenet": (1, 3, 0.5), "imagenet-uniform": (1, 1, 1)})
    peak = float(np.percentile(np.abs(np.concatenate([m.ravel() for m in maps.values()])), 99.5))
    preds = {m: real_slice > 0.5 for m in maps}
    fig = slice_view_figure(
        real_slice, mask=real_slice > 0.6, predictions=preds, maps=maps, offsets=OFFSETS, look=SliceLook(signed=signed)
    )
    heat = [
        t
        for t in fig.data
        if isinstance(t, go.Heatmap) and t.name.startswith(tuple(maps)) and not t.name.startswith("prediction")
    ]
    assert [t.name for t in heat] == [f"{m} {o}" for m in maps for o in ("−1", "0", "+1")]
    assert {(t.zmin, t.zmax) for t in heat} == {((-peak, peak) if signed else (0.0, peak))}
    assert [t.showscale for t in heat].count(True) == 1
    colorscale = heat[0].colorscale
    assert all(t.colorscale == colorscale for t in heat)
    assert (colorscale[0][1], colorscale[-1][1]) == (
        ("rgb(5,48,97)", "rgb(103,0,31)") if signed else ("#440154", "#fde725")
    )
    if not signed:  # magnitudes: the heatmap shows |A|
        np.testing.assert_allclose(heat[1].z, np.abs(maps["imagenet"][1]))
    images = [t for t in fig.data if t.name == "image"]
    assert len(images) == 1 + len(preds)  # the image alone, then one panel per prediction
    assert sum(isinstance(t, go.Contour) and t.name == "mask" for t in fig.data) == 1 + len(preds)


def test_slice_view_window_and_image_only(real_slice):
    fig = slice_view_figure(real_slice, offsets=OFFSETS, look=SliceLook(window=(0.1, 0.8)))
    assert len(fig.data) == 1
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.1, 0.8)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mask=np.zeros((3, 3), bool)), r"mask: array of shape \(3, 3\)"),
        (dict(predictions={"m": np.zeros((3, 3), bool)}), r"predictions\['m'\]: array of shape"),
        (
            dict(maps={"m": np.zeros((2, 8, 9))}),
            r"maps\['m'\]: attribution of shape \(2, 8, 9\); expected \(C, H, W\) = \(3, 8, 9\)",
        ),
        (dict(look=SliceLook(window=(1.0, 1.0))), r"window: \(1, 1\); expected \(low, high\) with high > low"),
    ],
)
def test_slice_view_bad_inputs_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        slice_view_figure(np.zeros((8, 9)), offsets=OFFSETS, **kwargs)


def test_slice_view_all_zero_maps_still_have_a_valid_range():
    fig = slice_view_figure(
        np.ones((4, 5)), maps={"m": np.zeros((3, 4, 5))}, offsets=OFFSETS, look=SliceLook(window=(0, 2))
    )
    assert {(t.zmin, t.zmax) for t in fig.data if t.name.startswith("m ")} == {(0.0, 1.0)}


def test_slice_view_ignores_nan_pixels_for_the_range():
    maps = {"m": np.full((3, 4, 5), np.nan, np.float32)}
    maps["m"][1, 2, 3] = -4.0
    fig = slice_view_figure(np.ones((4, 5)), maps=maps, offsets=OFFSETS, look=SliceLook(window=(0, 2), signed=True))
    assert {(t.zmin, t.zmax) for t in fig.data if t.name.startswith("m ")} == {(-4.0, 4.0)}


def engine_style_summary() -> dict:
    """The spelling explorer.analysis writes: comparisons as {"models": [a, b], "p"}, AI per pair."""
    summary = make_summary()
    summary["comparisons"] = [
        {
            "models": ["imagenet", "imagenet-uniform"],
            "mean_abs_ai": [0.16, 0.02],
            "p": 1e-5,
            "p_min": 1e-4,
            "p_holm": 1e-5,
            "n_slices": 28,
            "test": "block sign-flip test of per-slice |AI_a| − |AI_b|",
        }
    ]
    summary["models"]["imagenet"]["asymmetry_by_pair"] = {
        "1": {"mean": 0.163, "ci95": [0.15, 0.18], "p": 2.5e-9},
        "2": {"mean": -0.05, "ci95": [-0.07, -0.03], "p": 0.004, "p_min": 0.002},
    }
    summary["models"]["imagenet"]["n_slices"] = 28
    return summary


def test_engine_style_comparisons_and_ai_pairs_are_read():
    summary = engine_style_summary()
    table = comparison_table(summary)
    assert list(table.columns[:7]) == ["model A", "model B", "test", "statistic", "effect_size", "n", "p"]
    assert table.loc[0, "model B"] == "imagenet-uniform" and table.loc[0, "p"] == pytest.approx(1e-5)
    assert table.loc[0, "mean_abs_ai A"] == pytest.approx(0.16) and table.loc[0, "n_slices"] == 28
    stats = stats_table(summary)
    assert stats.loc[0, "AI ±2 mean"] == pytest.approx(-0.05) and stats.loc[0, "p ±2"] == 0.004
    assert np.isnan(stats.loc[1, "AI ±2 mean"]) and stats.loc[0, "slices"] == 28
    shown = format_table(stats)
    assert shown.loc[0, "AI ±2 [95% CI]"] == "-0.050 [-0.070, -0.030]" and shown.loc[0, "p ±2"] == "4.0e-03"
    assert shown.loc[0, "p min ±2"] == "2.0e-03"
    assert "mean_abs_ai A" in table_caption(table) and "p_holm: p adjusted by Holm" in table_caption(table)


def test_the_shown_tables_are_narrow_and_say_the_test_once():
    from explorer.reporting.figures.tables import display_comparisons, display_tables

    summary = engine_style_summary()
    parts = display_tables(stats_table(summary))
    assert list(parts["Asymmetry"].columns) == [
        "checkpoint",
        "AI [95% CI]",
        "p",
        "p min",
        "AI ±2 [95% CI]",
        "p ±2",
        "p min ±2",
    ]
    shares = parts["Mean share of attribution per input channel (offset)"]
    assert list(shares.columns) == ["checkpoint", "\u22121", "0", "+1"] and list(shares["0"]) == ["0.450", "0.340"]
    assert all(len(p.columns) <= 8 and "model" not in p and "strategy" not in p for p in parts.values())
    summary["comparisons"] += [{**summary["comparisons"][0], "p": 0.2}]
    shown, footnote = display_comparisons(comparison_table(summary), summary)
    assert "test" not in shown and footnote == "test: block sign-flip test of per-slice |AI_a| − |AI_b|"
    assert list(shown.columns) == [
        "model A",
        "model B",
        "mean_abs_ai A",
        "mean_abs_ai B",
        "statistic",
        "effect_size",
        "n",
        "p",
        "p_holm",
    ]
    assert list(shown["p"]) == ["1.0e\u221205", "2.0e\u221201"]
    assert list(shown["model A"]) == ["imagenet", "imagenet"]
    assert list(parts["Asymmetry"]["AI [95% CI]"])[1] == "\u22120.004 [\u22120.020, +0.010]"  # as in the figures


def test_upright_puts_the_second_in_plane_axis_up_the_screen():
    from explorer.reporting.figures import upright

    s = np.arange(6).reshape(2, 3)  # rows: x (2 values), columns: y (3 values)
    shown = upright(s)
    assert shown.shape == (3, 2)
    assert shown[0].tolist() == [s[0, 2], s[1, 2]]  # top row: the largest y (anterior), x left→right
    maps = np.stack([s, 10 * s])
    assert np.array_equal(upright(maps)[1], upright(10 * s))


def test_short_labels_drop_the_shared_prefix():
    from explorer.reporting.figures import short_labels

    names = ["unet-mobilenet_v2-imagenet", "unet-mobilenet_v2-imagenet-uniform", "unet-mobilenet_v2-random"]
    assert short_labels(names) == {names[0]: "imagenet", names[1]: "imagenet-uniform", names[2]: "random"}
    assert short_labels(["only-one"]) == {"only-one": "only-one"}


def test_slice_view_scale_is_not_set_by_one_extreme_pixel():
    maps = {"m": np.ones((3, 20, 20), np.float32)}
    maps["m"][0, 0, 0] = 1e6
    fig = slice_view_figure(np.ones((20, 20)), maps=maps, offsets=OFFSETS, look=SliceLook(window=(0, 2)))
    assert {(t.zmin, t.zmax) for t in fig.data if t.name.startswith("m ")} == {(0.0, 1.0)}
    fig = slice_view_figure(
        np.ones((20, 20)), maps=maps, offsets=OFFSETS, look=SliceLook(window=(0, 2), clip_percentile=None)
    )
    assert {(t.zmin, t.zmax) for t in fig.data if t.name.startswith("m ")} == {(0.0, 1e6)}


def test_shades_are_lighter_versions_of_the_strategy_hue():
    from explorer.reporting.figures.style import shade

    assert shade("#4477AA", 0) == "#4477AA"
    assert shade("#4477AA", 1) == "#7CA0C4"  # 30% white: 0x44 + 0.3 * (255 - 0x44) = 124 = 0x7C
    assert shade("#000000", 9) == "#8C8C8C"  # never paler than 55% white: 0.55 * 255 = 140
    colours = model_colours(["unet-imagenet-s0", "unet-imagenet-s1", "unet-imagenet-s2"])
    assert list(colours.values()) == [
        STRATEGY_COLOURS["imagenet"],
        shade(STRATEGY_COLOURS["imagenet"], 1),
        shade(STRATEGY_COLOURS["imagenet"], 2),
    ]
    with pytest.raises(InputError, match="'#rrggbb'"):
        shade("red", 1)


def test_subtitles_break_between_phrases():
    from explorer.reporting.figures.style import wrap

    text = "L1 norm of the first conv's kernels per input channel, normalised to sum to 1"
    assert wrap(text, 400, 12) == "L1 norm of the first conv's kernels per input channel,<br>normalised to sum to 1"


def test_the_logit_shift_table_says_why_a_value_is_missing():
    from explorer.reporting.figures.tables import logit_shift_table

    summary = make_summary()
    summary["models"]["imagenet"]["logits"] = {
        "foreground": "mask",
        "shift_skipped": None,
        "shift": {
            "train_mean": 4.0,
            "heldout_mean": 2.5,
            "shift": -1.5,
            "train_fn_rate": 0.02,
            "heldout_fn_rate": None,
        },
    }
    summary["models"]["imagenet-uniform"]["logits"] = {
        "foreground": "prediction",
        "shift": None,
        "shift_skipped": "no ground-truth mask",
    }
    table = logit_shift_table(summary)
    assert list(table.iloc[0, 2:]) == ["+4.000", "+2.500", "-1.500", "0.020", "no foreground pixels on these slices"]
    assert set(table.iloc[1, 2:]) == {"not computed: no ground-truth mask"}
    assert not table.isna().any().any() and "None" not in table.to_string()
