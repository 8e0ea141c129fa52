"""The slice viewer: one slice with window/level, mask and prediction overlays, and every model's
per-channel attribution heatmaps on one shared, unnormalised colour scale.

Shapes: ``image`` ``(H, W)``; ``mask`` and each prediction ``(H, W)`` bool; each attribution map
``(C, H, W)`` with channel ``i`` belonging to ``offsets[i]``. Arrays are shown as they are: row 0 at the
top, column 0 at the left (orient the slice before calling, e.g. with :func:`upright`).

Grid: ``C`` columns (one per channel) when there are maps. The first rows hold the image (mask outlined) and
one panel per model with its prediction, wrapped into rows of ``C``; then one row per model with its ``C``
channel maps, the model named beside the row and the colour bar next to the last column. Panels are sized to
the slice's aspect, so there is no gap between a title and its image. The screen and the report draw this same
figure (``explorer.app.viewer.slice_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...errors import InputError
from .style import checkpoint_look, number, offset_label, style

__all__ = [
    "MASK_COLOR",
    "PANEL_PX",
    "TITLE_PX",
    "GAP_PX",
    "TITLE_PAD",
    "LEFT_PX",
    "SIGNED_SCALE",
    "MAGNITUDE_SCALE",
    "upright",
    "SliceLook",
    "slice_view_figure",
]


MASK_COLOR = "#FFD400"
PANEL_PX = 230  # width of one panel in layout pixels
TITLE_PX = 22  # room for a panel title between rows
GAP_PX = 6  # between columns
TITLE_PAD = 8  # the top row's panel titles stand above the plot area
LEFT_PX = 34  # room for the checkpoint's name beside its row of maps
SIGNED_SCALE = "RdBu_r"
MAGNITUDE_SCALE = "Viridis"


def upright(array: np.ndarray) -> np.ndarray:
    """Turn a canonical (RAS+) slice ``(..., H, W)`` for display: its second in-plane axis runs up the screen.

    A stack slice's rows are its first in-plane canonical axis (for an axial slice: x, left→right) and its
    columns the second (y, posterior→anterior). Shown as is, the head lies on its side; transposed and
    flipped, anterior (axial), superior (coronal, sagittal) is at the top and x runs left→right, as in
    neurological display convention.
    """
    return np.flip(np.swapaxes(np.asarray(array), -1, -2), axis=-2)


@dataclass(frozen=True)
class SliceLook:
    """How :func:`slice_view_figure` draws: the one settings object the screen and the report share.

    Attributes:
        signed: signed methods (gradient, input × gradient, integrated gradients) get a diverging scale
            centred at 0 (``[-m, m]``); otherwise a sequential scale ``[0, m]``; ``m`` = largest finite
            |value| (1 when every map is 0 or NaN; NaN pixels are left blank).
        window: ``(lo, hi)`` grey-level window of the image (default: its 1st and 99th percentiles).
        title: figure title (default ``Slice viewer``).
        clip_percentile: ``m`` is this percentile of |value| over all maps (saliency has a few extreme
            pixels that would otherwise leave every map dark); larger values saturate. None: the maximum.
        per_row_scale: one colour range per model row (its own percentile) instead of one shared range, so a
            model with large gradients (e.g. ``random``) does not leave the others' maps dark.
        map_opacity: draw the anatomy under every attribution map and blend the map over it with this
            opacity (None: the maps alone).
        prediction_opacity: opacity of the prediction tint in the top row.
        orientation: ``(left, right, top, bottom)`` labels drawn at the image panel's edges (e.g.
            ``("L", "R", "A", "P")``), or None.
    """

    signed: bool = False
    window: tuple[float, float] | None = None
    title: str | None = None
    clip_percentile: float | None = 99.5
    per_row_scale: bool = False
    map_opacity: float | None = None
    prediction_opacity: float = 0.25
    orientation: tuple[str, str, str, str] | None = None


def slice_view_figure(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    predictions: Mapping[str, np.ndarray] | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
    offsets: Sequence[int],
    summary: Mapping | None = None,
    look: SliceLook = SliceLook(),
) -> go.Figure:
    """Build the slice viewer figure.

    Args:
        image: the slice ``(H, W)``.
        mask: ground truth ``(H, W)`` (outlined in yellow on every image panel), or ``None``.
        predictions: ``{model: (H, W) bool}``; each gets an image panel with its prediction filled in the
            model's colour.
        maps: ``{model: (C, H, W)}`` attribution maps; every heatmap shares ONE colour range, so the same
            value is the same colour in every panel.
        offsets: the window offsets, one per map channel.
        summary: the analysis summary: checkpoints' colours and short panel labels follow their strategy and
            seed (as in every other figure).
        look: the scales, window, title, opacities and orientation letters (:class:`SliceLook`).

    Returns:
        Image panels are ``Heatmap`` traces named ``image``; attribution heatmaps are named
        ``"<model> <offset>"`` and carry identical ``zmin``/``zmax``.

    Raises:
        InputError: an array of the wrong shape, offsets not matching the map channels, or an empty window.
    """
    signed, window, title, clip_percentile = look.signed, look.window, look.title, look.clip_percentile
    per_row_scale, map_opacity, prediction_opacity = look.per_row_scale, look.map_opacity, look.prediction_opacity
    orientation = look.orientation
    image = _as_2d(image, "image").astype(np.float32)  # float32 halves what the browser receives
    shape = image.shape
    mask = None if mask is None else _as_2d(mask, "mask", shape).astype(bool)
    predictions = {str(k): _as_2d(v, f"predictions[{k!r}]", shape).astype(bool) for k, v in (predictions or {}).items()}
    maps = {str(k): _as_maps(v, f"maps[{k!r}]", shape, len(offsets)) for k, v in (maps or {}).items()}
    lo, hi = _window(image, window)
    colors, label = checkpoint_look([*predictions, *maps], summary)
    image_panels = [(None, None)] + [(m, p) for m, p in predictions.items()]
    n_cols = len(offsets) if maps else len(image_panels)  # every row uses every column: no empty panels
    image_rows = -(-len(image_panels) // n_cols)
    n_rows = image_rows + len(maps)
    titles = ["image" + (" + mask" if mask is not None else "")] + [label[m] for m in predictions]
    titles += [""] * (image_rows * n_cols - len(titles))
    for _ in maps:  # the checkpoint is named once per row, beside it (a title per panel would not fit)
        titles += [f"offset {offset_label(int(o))}" for o in offsets]
    subtitle = (
        f"top: predictions in each checkpoint's colour; window [{number(lo, '.4g')}, {number(hi, '.4g')}]"
        + (
            (
                "; attribution on one scale per row"
                if per_row_scale
                else "; attribution on one shared, unnormalised scale"
            )
            if maps
            else ""
        )
        + (f", saturating above the {clip_percentile:g}th percentile of |A|" if maps and clip_percentile else "")
        + ("; anatomy under the maps" if maps and map_opacity is not None else "")
    )
    margin = dict(l=LEFT_PX if maps else 20, r=100, b=20)
    width = margin["l"] + margin["r"] + n_cols * PANEL_PX + (n_cols - 1) * GAP_PX
    top = _top_margin(title or "Slice viewer", subtitle, width)
    panel_h = PANEL_PX * min(max(shape[0] / shape[1], 0.4), 2.5)  # as tall as the slice's aspect needs: no gaps
    plot_h = n_rows * panel_h + (n_rows - 1) * TITLE_PX
    height = round(top + margin["b"] + plot_h)
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=titles,
        horizontal_spacing=GAP_PX / (width - margin["l"] - margin["r"]),
        vertical_spacing=TITLE_PX / plot_h if n_rows > 1 else 0.0,
    )
    for i, (model, pred) in enumerate(image_panels):
        row, col = 1 + i // n_cols, 1 + i % n_cols
        fig.add_trace(
            go.Heatmap(
                z=image,
                zmin=lo,
                zmax=hi,
                colorscale="gray",
                showscale=False,
                name="image",
                hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra>image</extra>",
            ),
            row,
            col,
        )
        if pred is not None:
            fig.add_trace(_fill(pred, colors[model], f"prediction {model}", prediction_opacity), row, col)
        if mask is not None:
            fig.add_trace(_outline(mask, MASK_COLOR, "mask"), row, col)
    if map_opacity is not None:  # the anatomy under each map, the map blended over it
        for row in range(image_rows + 1, n_rows + 1):
            for col in range(1, len(offsets) + 1):
                fig.add_trace(
                    go.Heatmap(
                        z=image, zmin=lo, zmax=hi, colorscale="gray", showscale=False, name="anatomy", hoverinfo="skip"
                    ),
                    row,
                    col,
                )
    _add_maps(
        fig,
        maps,
        offsets,
        signed,
        image_rows,
        clip_percentile,
        per_row_scale,
        1.0 if map_opacity is None else map_opacity,
    )
    for row, model in enumerate(maps, start=image_rows + 1):
        fig.update_yaxes(
            title=dict(text=label[model], standoff=4, font=dict(size=12, color=colors[model])), row=row, col=1
        )
    if orientation is not None:
        _orientation_labels(fig, orientation)
    fig.update_xaxes(showticklabels=False, ticks="", showline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, ticks="", showline=False, autorange="reversed", constrain="domain")
    for i in range(1, n_rows * n_cols + 1):  # square pixels in every panel
        fig.layout[f"yaxis{i if i > 1 else ''}"].scaleanchor = f"x{i if i > 1 else ''}"
    fig.update_annotations(font_size=12, yshift=-2)  # panel titles fit one panel, just above it
    fig.update_layout(width=width)
    style(fig, title or "Slice viewer", height=height, subtitle=subtitle, title_pad=TITLE_PAD)
    fig.update_layout(margin=margin, showlegend=False)
    return fig


def _top_margin(title: str, subtitle: str, width: int) -> int:
    """The top margin :func:`style` gives a figure of this title, subtitle and width (the panels are sized
    from what is left, so that each is exactly as tall as its slice)."""
    probe = style(go.Figure(layout=dict(width=width)), title, height=400, subtitle=subtitle, title_pad=TITLE_PAD)
    return int(probe.layout.margin.t)


def _add_maps(
    fig: go.Figure,
    maps: Mapping[str, np.ndarray],
    offsets: Sequence[int],
    signed: bool,
    image_rows: int,
    clip_percentile: float | None,
    per_row: bool = False,
    opacity: float = 1.0,
) -> None:
    """Add every model's channel heatmaps in the rows after ``image_rows``: one shared colour range with its
    colour bar beside the map rows, or one range and a short bar per model row."""
    if not maps:
        return
    scale = SIGNED_SCALE if signed else MAGNITUDE_SCALE
    shared = _peak(list(maps.values()), clip_percentile)
    first, last = _row_domain(fig, image_rows + 1), _row_domain(fig, image_rows + len(maps))
    for row, (model, channels) in enumerate(maps.items(), start=image_rows + 1):
        peak = _peak([channels], clip_percentile) if per_row else shared
        zmin, zmax = (-peak, peak) if signed else (0.0, peak)
        if per_row:  # a short colour bar beside its own row
            lo, hi = _row_domain(fig, row)
            bar = dict(len=hi - lo, y=(lo + hi) / 2, yanchor="middle", thickness=10, tickformat=".2g", x=1.0, xpad=6)
        else:
            bar = dict(
                title=dict(text="attribution" if signed else "|attribution|", side="right"),
                len=first[1] - last[0],
                y=(first[1] + last[0]) / 2,
                yanchor="middle",
                thickness=14,
                x=1.0,
                xpad=6,
            )
        for col, (off, channel) in enumerate(zip(offsets, channels, strict=False), start=1):
            fig.add_trace(
                go.Heatmap(
                    z=channel if signed else np.abs(channel),
                    zmin=zmin,
                    zmax=zmax,
                    colorscale=scale,
                    name=f"{model} {offset_label(int(off))}",
                    showscale=col == 1 and (per_row or row == image_rows + 1),
                    colorbar=bar,
                    opacity=opacity,
                    hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra>%{fullData.name}</extra>",
                ),
                row,
                col,
            )


def _row_domain(fig: go.Figure, row: int) -> tuple[float, float]:
    """The paper-y domain of a subplot row."""
    return tuple(fig.get_subplot(row, 1).yaxis.domain)


def _peak(maps: Sequence[np.ndarray], clip_percentile: float | None) -> float:
    """The colour range's top: the ``clip_percentile`` of |value| over ``maps`` (NaN, i.e. skipped, ignored)."""
    finite = np.concatenate([np.abs(m[np.isfinite(m)]) for m in maps])
    if not finite.size:
        return 1.0
    peak = float(finite.max()) if clip_percentile is None else float(np.percentile(finite, clip_percentile))
    return peak or 1.0


def _orientation_labels(fig: go.Figure, labels: tuple[str, str, str, str]) -> None:
    """Letters at the left, right, top and bottom edges inside the first (image) panel, white on a dark box
    (not the mask's yellow, and legible over an outline that reaches the edge)."""
    spots = [
        (0.02, 0.5, "left", "middle"),
        (0.98, 0.5, "right", "middle"),
        (0.5, 0.98, "center", "top"),
        (0.5, 0.02, "center", "bottom"),
    ]
    for text, (x, y, xa, ya) in zip(labels, spots, strict=True):
        fig.add_annotation(
            text=f"<b>{text}</b>",
            x=x,
            y=y,
            xref="x domain",
            yref="y domain",
            xanchor=xa,
            yanchor=ya,
            showarrow=False,
            font=dict(color="white", size=12),
            bgcolor="rgba(0, 0, 0, 0.55)",
            borderpad=1,
        )


def _fill(region: np.ndarray, color: str, name: str, opacity: float) -> go.Heatmap:
    """A translucent fill of a boolean region (NaN outside, so the image shows through)."""
    return go.Heatmap(
        z=np.where(region, np.float32(1), np.float32(np.nan)),
        zmin=0,
        zmax=1,
        colorscale=[[0, color], [1, color]],
        opacity=opacity,
        showscale=False,
        name=name,
        hoverinfo="skip",
    )


def _outline(region: np.ndarray, color: str, name: str) -> go.Contour:
    """The outline of a boolean region as one contour line at 0.5."""
    return go.Contour(
        z=region.astype(np.float32),
        contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
        line=dict(color=color, width=2),
        showscale=False,
        name=name,
        hoverinfo="skip",
    )


def _as_2d(array: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or (shape is not None and array.shape != shape):
        raise InputError(name, f"array of shape {array.shape}", f"shape {shape}" if shape else "a 2D slice (H, W)")
    return array


def _as_maps(array: np.ndarray, name: str, shape: tuple[int, ...], n_channels: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape != (n_channels, *shape):
        raise InputError(
            name,
            f"attribution of shape {array.shape}",
            f"(C, H, W) = {(n_channels, *shape)}: one channel per offset, on the image's grid",
        )
    return array


def _window(image: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float]:
    if window is None:
        lo, hi = (float(v) for v in np.percentile(image, [1, 99]))
        return (lo, hi) if hi > lo else (float(image.min()), float(image.max()) + 1e-6)
    lo, hi = (float(v) for v in window)
    if not hi > lo:
        raise InputError("window", f"({lo:g}, {hi:g})", "(low, high) with high > low")
    return lo, hi
