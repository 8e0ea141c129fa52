"""Figures of the diagnostics (background attention, logit histograms, sanity check, Grad-CAM panels).

Pure functions of data: ``slices`` is the per-slice diagnostics table and ``histograms`` the logit-histogram
table of :func:`explorer.diagnostics.diagnostics_tables` (columns documented there), ``sanity`` its
``{model: sanity summary}`` dict, ``summary`` the ``summary.json`` dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...errors import InputError
from .style import checkpoint_look, offset_label, reference_line, style

__all__ = [
    "GROUP_LABELS",
    "fraction_figure",
    "background_figure",
    "cam_background_figure",
    "logit_histogram_figure",
    "sanity_figure",
    "cam_figure",
    "diagnostics_figures",
]


#: Logit-histogram groups drawn, with their labels.
GROUP_LABELS = {
    "foreground": "foreground",
    "background": "background",
    "tp": "true positive",
    "fn": "false negative",
    "fp": "false positive",
    "foreground_train": "foreground, training slices",
    "foreground_heldout": "foreground, held-out slices",
}


def fraction_figure(
    long: pd.DataFrame,
    labels: Sequence[str],
    *,
    title: str,
    subtitle: str,
    x_title: str,
    summary: Mapping | None = None,
) -> go.Figure:
    """Violins of per-slice fractions in ``[0, 1]``, models side by side.

    Args:
        long: ``model, label, fraction`` (one row per model × slice × label; NaN rows are dropped).
        labels: x categories in order.
        title, subtitle, x_title: texts.
        summary: the analysis summary (each checkpoint's strategy and seed: colour and short label), or None.

    Returns:
        One violin trace per model.
    """
    long = long.dropna(subset=["fraction"])
    models = list(dict.fromkeys(long["model"]))
    colors, names = checkpoint_look(models, summary)
    fig = go.Figure()
    for model in models:
        rows = long[long["model"] == model]
        fig.add_trace(
            go.Violin(
                x=rows["label"],
                y=rows["fraction"],
                name=names[model],
                legendgroup=model,
                hovertemplate=f"{model}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
                line=dict(color=colors[model]),
                fillcolor=colors[model],
                opacity=0.75,
                box_visible=True,
                meanline_visible=True,
                points=False,
                spanmode="hard",
            )
        )
    fig.update_layout(violinmode="group")
    fig.update_xaxes(title_text=x_title, categoryorder="array", categoryarray=list(labels))
    fig.update_yaxes(title_text="fraction outside the object", range=[0, 1.02])
    return style(fig, title, height=480, subtitle=subtitle)


def _long(slices: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    frame = slices[["model", *columns]].melt(id_vars="model", var_name="column", value_name="fraction")
    frame["label"] = frame["column"].map(columns)
    return frame


def background_figure(slices: pd.DataFrame, *, summary: Mapping | None = None) -> go.Figure:
    """Per-slice fraction of attribution outside the foreground, per offset and in total, models side by side.

    Args:
        slices: per-slice table with ``model``, ``background_<offset>`` and ``background_total`` columns.
        summary: the analysis summary (colours and labels), or None.

    Returns:
        One violin trace per model (x = offset label or ``all``, y = fraction).

    Raises:
        InputError: no ``background_total`` column.
    """
    if "background_total" not in slices.columns:
        raise InputError("slices", f"columns {list(slices.columns)}", "a 'background_total' column")
    offsets = sorted(
        int(c[len("background_") :]) for c in slices.columns if c.startswith("background_") and c != "background_total"
    )
    columns = {**{f"background_{o}": offset_label(o) for o in offsets}, "background_total": "all"}
    return fraction_figure(
        _long(slices, columns),
        list(columns.values()),
        title="Background attention per slice",
        subtitle="Σ|A| outside the (dilated) foreground / Σ|A| (Bassi et al., arXiv 2401.08409)",
        x_title="input channel (slice offset)",
        summary=summary,
    )


def cam_background_figure(slices: pd.DataFrame, *, summary: Mapping | None = None) -> go.Figure:
    """Per-slice fraction of Grad-CAM mass outside the foreground, standard vs ``|logit|`` target."""
    columns = {"cam_background_standard": "standard target", "cam_background_abs": "|logit| target"}
    return fraction_figure(
        _long(slices, columns),
        list(columns.values()),
        title="Grad-CAM mass outside the object",
        subtitle="Zhang, Bieri, Günther (arXiv 2403.14435): |logit| shows evidence for either side",
        x_title="Grad-CAM target",
        summary=summary,
    )


def logit_histogram_figure(
    histograms: pd.DataFrame, *, groups: Sequence[str] | None = None, summary: Mapping | None = None
) -> go.Figure:
    """Logit histograms per checkpoint (one panel each, titled with its short label), one line per pixel group,
    densities on a log scale.

    Args:
        histograms: ``model, group, bin_left, bin_right, count``.
        groups: which groups (default all present).
        summary: the analysis summary (short labels), or None.

    Returns:
        One trace per checkpoint × group, named after the group (the legend lists each group once, in the
        same colour in every panel); a dotted line marks the decision boundary 0.
    """
    models = list(dict.fromkeys(histograms["model"])) or ["(none)"]
    _, labels = checkpoint_look(models, summary)
    fig = make_subplots(
        rows=len(models),
        cols=1,
        subplot_titles=[labels[m] for m in models],
        shared_xaxes=False,
        vertical_spacing=min(0.12, 0.5 / max(len(models), 1)),
    )
    palette = ["#0072B2", "#999999", "#009E73", "#D55E00", "#CC79A7", "#E69F00", "#56B4E9"]
    wanted = list(groups or GROUP_LABELS)
    shown: set[str] = set()
    for r, model in enumerate(models, start=1):
        rows = histograms[histograms["model"] == model]
        for i, group in enumerate(g for g in GROUP_LABELS if g in wanted):
            part = rows[rows["group"] == group]
            if part.empty:
                continue
            centres = (part["bin_left"] + part["bin_right"]) / 2
            density = part["count"] / part["count"].sum()
            fig.add_trace(
                go.Scatter(
                    x=centres,
                    y=density,
                    mode="lines",
                    line=dict(shape="hvh", color=palette[i]),
                    name=GROUP_LABELS[group],
                    legendgroup=group,
                    showlegend=group not in shown,
                    hovertemplate=f"{model}: {GROUP_LABELS[group]}<br>logit %{{x:.2f}}: %{{y:.3g}}<extra></extra>",
                ),
                row=r,
                col=1,
            )
            shown.add(group)
        fig.add_vline(x=0, line=dict(color="#444444", dash="dot", width=1), row=r, col=1)
        fig.update_yaxes(
            type="log", title_text="fraction of pixels", exponentformat="power", dtick=1, row=r, col=1
        )  # 10⁻⁴, not plotly's SI "100μ" for a fraction
    fig.update_xaxes(title_text="foreground logit", row=len(models), col=1)
    return style(
        fig,
        "Logit distributions",
        height=260 * len(models) + 200,
        title_pad=24,
        subtitle="held-out foreground logits drifting toward 0 relative to training ones = logit shift "
        "(Li, Kamnitsas, Glocker, arXiv 2102.10365)",
    )


def sanity_figure(sanity: Mapping[str, Mapping], *, summary: Mapping | None = None) -> go.Figure:
    """Mean rank correlation with the original maps after each randomisation stage, per checkpoint.

    Args:
        sanity: ``{model: sanity summary}`` (``rank_correlation``, ``threshold``, ``flagged``).
        summary: the analysis summary (colours and labels), or None.

    Returns:
        One bar trace per checkpoint (x = stage; a flagged one's label ends in ``(flagged)``), a dotted line
        at the flag threshold named in the legend.
    """
    models = list(sanity)
    colors, labels = checkpoint_look(models, summary)
    fig = go.Figure()
    threshold = None
    for model in models:
        entry = sanity[model]
        stages = list(entry["rank_correlation"])
        values = [entry["rank_correlation"][s] for s in stages]
        fig.add_trace(
            go.Bar(
                x=stages,
                y=values,
                name=labels[model] + (" (flagged)" if entry.get("flagged") else ""),
                legendgroup=model,
                marker=dict(color=colors[model]),
                hovertemplate=f"{model}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
        threshold = entry.get("threshold", threshold)
    if threshold is not None:
        reference_line(fig, threshold, f"flag at ≥ {threshold}")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="randomised stage (cumulative)")
    fig.update_yaxes(title_text="Spearman ρ with original maps", range=[-0.2, 1.02])
    return style(
        fig,
        "Sanity check: cascading parameter randomisation",
        height=480,
        subtitle="Adebayo et al. 2018: a faithful method's maps change when the weights are destroyed",
    )


def cam_figure(
    image: np.ndarray,
    cams: Mapping[str, np.ndarray],
    *,
    layer: str,
    title: str | None = None,
    summary: Mapping | None = None,
) -> go.Figure:
    """Grad-CAM panels of one slice: one row per model, columns image, standard CAM, |logit| CAM.

    Args:
        image: the slice ``(H, W)``.
        cams: ``{model: (2, H, W)}`` (standard, |logit|); each row shares one colour range.
        layer: the Grad-CAM layer (in the title).
        title: override the title.
        summary: the analysis summary (short row labels), or None.

    Returns:
        Heatmap traces named ``image``, ``"<model> standard"`` and ``"<model> |logit|"``.

    Raises:
        InputError: a CAM whose shape is not ``(2, H, W)``.
    """
    models = list(cams)
    _, labels = checkpoint_look(models, summary)
    fig = make_subplots(
        rows=max(len(models), 1),
        cols=3,
        horizontal_spacing=0.03,
        vertical_spacing=0.06,
        column_titles=["slice", "CAM", "|logit| CAM"],
        row_titles=[labels[m] for m in models] or None,
    )
    for r, model in enumerate(models, start=1):
        cam = np.asarray(cams[model], dtype=np.float32)
        if cam.shape != (2, *image.shape):
            raise InputError("cams", f"{model}: shape {cam.shape}", f"(2, {image.shape[0]}, {image.shape[1]})")
        fig.add_trace(go.Heatmap(z=image, colorscale="gray", showscale=False, name="image"), row=r, col=1)
        top = float(np.nanmax(cam)) or 1.0
        for c, label in enumerate(("standard", "|logit|")):
            fig.add_trace(
                go.Heatmap(
                    z=cam[c],
                    colorscale="Inferno",
                    zmin=0,
                    zmax=top,
                    showscale=c == 1 and r == 1,
                    name=f"{model} {label}",
                ),
                row=r,
                col=c + 2,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return style(
        fig,
        title or f"Grad-CAM on {layer}",
        height=260 * max(len(models), 1) + 140,
        title_pad=24,
        subtitle="CAM: Grad-CAM of the foreground logits; |logit| CAM: of |logit| (evidence for either side)",
    )


def diagnostics_figures(tables: Mapping, summary: Mapping) -> dict[str, go.Figure]:
    """The diagnostics' report figures by file stem (those whose data exist).

    Args:
        tables: :func:`explorer.diagnostics.diagnostics_tables` output.
        summary: the ``summary.json`` dict (strategies and seeds give colours and labels).

    Returns:
        ``{"background_attention", "logit_histograms", ["cam_background"], ["sanity_check"]}`` figures.
    """
    slices = tables["slices"]
    figs: dict[str, go.Figure] = {}
    if "background_total" in slices.columns and slices["background_total"].notna().any():
        figs["background_attention"] = background_figure(slices, summary=summary)
    if not tables["logit_histograms"].empty:
        figs["logit_histograms"] = logit_histogram_figure(tables["logit_histograms"], summary=summary)
    if "cam_background_standard" in slices.columns:
        figs["cam_background"] = cam_background_figure(slices, summary=summary)
    if tables["sanity"]:
        figs["sanity_check"] = sanity_figure(tables["sanity"], summary=summary)
    return figs
