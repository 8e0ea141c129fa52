"""The slice viewer: one slice with window/level, mask and prediction overlays, and every model's
per-channel attribution heatmaps on one shared, unnormalised colour scale.

Shapes: ``image`` ``(H, W)``; ``mask`` and each prediction ``(H, W)`` bool; each attribution map
``(C, H, W)`` with channel ``i`` belonging to ``offsets[i]``. Arrays are shown as they are: row 0 at the
top, column 0 at the left (orient the slice before calling, e.g. with :func:`upright`).

Grid: the first row holds the image (mask outlined) and one panel per model with its prediction; then one
row per model with its ``C`` channel maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError
from ._style import checkpoint_look, offset_label, style

MASK_COLOR = "#FFD400"
PANEL_PX = 230  # width of one panel in layout pixels
TITLE_PX = 36  # room for a panel title between rows
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


def slice_view_figure(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    predictions: Mapping[str, np.ndarray] | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
    offsets: Sequence[int],
    signed: bool = False,
    window: tuple[float, float] | None = None,
    title: str | None = None,
    clip_percentile: float | None = 99.5,
    summary: Mapping | None = None,
    per_row_scale: bool = False,
    map_opacity: float | None = None,
    prediction_opacity: float = 0.25,
    orientation: tuple[str, str, str, str] | None = None,
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
        signed: signed methods (gradient, input × gradient, integrated gradients) get a diverging scale
            centred at 0 (``[-m, m]``); otherwise a sequential scale ``[0, m]``; ``m`` = largest finite
            |value| (1 when every map is 0 or NaN; NaN pixels are left blank).
        window: ``(lo, hi)`` grey-level window of the image (default: its 1st and 99th percentiles).
        title: figure title (default ``Slice viewer``).
        clip_percentile: ``m`` is this percentile of |value| over all maps (saliency has a few extreme
            pixels that would otherwise leave every map dark); larger values saturate. None: the maximum.
        summary: the analysis summary: checkpoints' colours and short panel labels follow their strategy and
            seed (as in every other figure).
        per_row_scale: one colour range per model row (its own percentile) instead of one shared range, so a
            model with large gradients (e.g. ``random``) does not leave the others' maps dark.
        map_opacity: draw the anatomy under every attribution map and blend the map over it with this
            opacity (None: the maps alone).
        prediction_opacity: opacity of the prediction tint in the top row.
        orientation: ``(left, right, top, bottom)`` labels drawn at the image panel's edges (e.g.
            ``("L", "R", "A", "P")``), or None.

    Returns:
        Image panels are ``Heatmap`` traces named ``image``; attribution heatmaps are named
        ``"<model> <offset>"`` and carry identical ``zmin``/``zmax``.

    Raises:
        InputError: an array of the wrong shape, offsets not matching the map channels, or an empty window.
    """
    image = _as_2d(image, "image").astype(np.float32)  # float32 halves what the browser receives
    shape = image.shape
    mask = None if mask is None else _as_2d(mask, "mask", shape).astype(bool)
    predictions = {str(k): _as_2d(v, f"predictions[{k!r}]", shape).astype(bool) for k, v in (predictions or {}).items()}
    maps = {str(k): _as_maps(v, f"maps[{k!r}]", shape, len(offsets)) for k, v in (maps or {}).items()}
    lo, hi = _window(image, window)
    colors, label = checkpoint_look([*predictions, *maps], summary)
    n_cols = max(len(offsets) if maps else 1, 1 + len(predictions))
    n_rows = 1 + len(maps)
    titles = ["image" + (" + mask" if mask is not None else "")] + [label[m] for m in predictions]
    titles += [""] * (n_cols - len(titles))
    for model in maps:
        titles += [f"{label[model]} · {offset_label(int(o))}" for o in offsets] + [""] * (n_cols - len(offsets))
    panel_h = PANEL_PX * min(max(shape[0] / shape[1], 0.4), 2.5)  # rows as tall as the slice's aspect needs
    height = int(130 + n_rows * (panel_h + TITLE_PX))
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=TITLE_PX / height)
    image_panels = [(None, None)] + [(m, p) for m, p in predictions.items()]
    for col, (model, pred) in enumerate(image_panels, start=1):
        fig.add_trace(go.Heatmap(z=image, zmin=lo, zmax=hi, colorscale="gray", showscale=False, name="image",
                                 hovertemplate="row %{y}, col %{x}: %{z:.4g}<extra>image</extra>"), 1, col)
        if pred is not None:
            fig.add_trace(_fill(pred, colors[model], f"prediction {model}", prediction_opacity), 1, col)
        if mask is not None:
            fig.add_trace(_outline(mask, MASK_COLOR, "mask"), 1, col)
    if map_opacity is not None:  # the anatomy under each map, the map blended over it
        for row in range(2, n_rows + 1):
            for col in range(1, len(offsets) + 1):
                fig.add_trace(go.Heatmap(z=image, zmin=lo, zmax=hi, colorscale="gray", showscale=False,
                                         name="anatomy", hoverinfo="skip"), row, col)
    _add_maps(fig, maps, offsets, signed, n_rows, clip_percentile, per_row_scale,
              1.0 if map_opacity is None else map_opacity)
    if orientation is not None:
        _orientation_labels(fig, orientation)
    fig.update_xaxes(showticklabels=False, ticks="", showline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, ticks="", showline=False, autorange="reversed", constrain="domain")
    for i in range(1, n_rows * n_cols + 1):  # square pixels in every panel
        fig.layout[f"yaxis{i if i > 1 else ''}"].scaleanchor = f"x{i if i > 1 else ''}"
    fig.update_annotations(font_size=12)  # panel titles must fit one panel
    fig.update_layout(width=140 + PANEL_PX * n_cols)
    style(fig, title or "Slice viewer", height=height,
          subtitle=(f"top row: predictions in each checkpoint's colour; window [{lo:.4g}, {hi:.4g}]"
                    + (("; attribution on one scale per row" if per_row_scale else
                       "; attribution on one shared, unnormalised scale") if maps else "")
                    + (f", saturating above the {clip_percentile:g}th percentile of |A|" if maps and clip_percentile
                       else "")), title_pad=20)
    fig.update_layout(margin=dict(l=20, r=100, b=20), showlegend=False)
    return fig


def _add_maps(fig: go.Figure, maps: Mapping[str, np.ndarray], offsets: Sequence[int], signed: bool,
              n_rows: int, clip_percentile: float | None, per_row: bool = False, opacity: float = 1.0) -> None:
    """Add every model's channel heatmaps: one shared colour range and colour bar, or one per model row."""
    if not maps:
        return
    scale = SIGNED_SCALE if signed else MAGNITUDE_SCALE
    shared = _peak(list(maps.values()), clip_percentile)
    span = (n_rows - 1) / n_rows
    for row, (model, channels) in enumerate(maps.items(), start=2):
        peak = _peak([channels], clip_percentile) if per_row else shared
        zmin, zmax = (-peak, peak) if signed else (0.0, peak)
        if per_row:  # a short colour bar beside its own row
            bar = dict(len=1 / n_rows * 0.9, y=1 - (row - 0.5) / n_rows, yanchor="middle", thickness=10,
                       tickformat=".2g")
        else:
            bar = dict(title=dict(text="attribution" if signed else "|attribution|", side="right"),
                       len=span, y=span / 2, yanchor="middle", thickness=14)
        for col, (off, channel) in enumerate(zip(offsets, channels, strict=False), start=1):
            fig.add_trace(go.Heatmap(
                z=channel if signed else np.abs(channel), zmin=zmin, zmax=zmax, colorscale=scale,
                name=f"{model} {offset_label(int(off))}", showscale=col == 1 and (per_row or row == 2),
                colorbar=bar, opacity=opacity,
                hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra>%{fullData.name}</extra>"), row, col)


def _peak(maps: Sequence[np.ndarray], clip_percentile: float | None) -> float:
    """The colour range's top: the ``clip_percentile`` of |value| over ``maps`` (NaN, i.e. skipped, ignored)."""
    finite = np.concatenate([np.abs(m[np.isfinite(m)]) for m in maps])
    if not finite.size:
        return 1.0
    peak = float(finite.max()) if clip_percentile is None else float(np.percentile(finite, clip_percentile))
    return peak or 1.0


def _orientation_labels(fig: go.Figure, labels: tuple[str, str, str, str]) -> None:
    """Letters at the left, right, top and bottom edges inside the first (image) panel."""
    spots = [(0.02, 0.5, "left", "middle"), (0.98, 0.5, "right", "middle"), (0.5, 0.98, "center", "top"),
             (0.5, 0.02, "center", "bottom")]
    for text, (x, y, xa, ya) in zip(labels, spots, strict=True):
        fig.add_annotation(text=f"<b>{text}</b>", x=x, y=y, xref="x domain", yref="y domain", xanchor=xa,
                           yanchor=ya, showarrow=False, font=dict(color="#FFD400", size=13))


def _fill(region: np.ndarray, color: str, name: str, opacity: float) -> go.Heatmap:
    """A translucent fill of a boolean region (NaN outside, so the image shows through)."""
    return go.Heatmap(z=np.where(region, np.float32(1), np.float32(np.nan)), zmin=0, zmax=1,
                      colorscale=[[0, color], [1, color]],
                      opacity=opacity, showscale=False, name=name, hoverinfo="skip")


def _outline(region: np.ndarray, color: str, name: str) -> go.Contour:
    """The outline of a boolean region as one contour line at 0.5."""
    return go.Contour(z=region.astype(np.float32), contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                      line=dict(color=color, width=2), showscale=False, name=name, hoverinfo="skip")


def _as_2d(array: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or (shape is not None and array.shape != shape):
        raise InputError(name, f"array of shape {array.shape}", f"shape {shape}" if shape else "a 2D slice (H, W)")
    return array


def _as_maps(array: np.ndarray, name: str, shape: tuple[int, ...], n_channels: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape != (n_channels, *shape):
        raise InputError(name, f"attribution of shape {array.shape}",
                         f"(C, H, W) = {(n_channels, *shape)}: one channel per offset, on the image's grid")
    return array


def _window(image: np.ndarray, window: tuple[float, float] | None) -> tuple[float, float]:
    if window is None:
        lo, hi = (float(v) for v in np.percentile(image, [1, 99]))
        return (lo, hi) if hi > lo else (float(image.min()), float(image.max()) + 1e-6)
    lo, hi = (float(v) for v in window)
    if not hi > lo:
        raise InputError("window", f"({lo:g}, {hi:g})", "(low, high) with high > low")
    return lo, hi
