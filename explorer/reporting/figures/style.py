"""Shared look of every figure: one colour and one short label per checkpoint, offset labels, fonts, layout.

A checkpoint's colour depends only on its strategy and seed (never on its position or on which other
checkpoints are shown), so it is the same in every view, session, export and subset. Offsets arrive as ints
from ``shares`` and as ints *or* strings (``"-1"``) from a ``summary`` that went through JSON;
:func:`offset_values` turns either into ``{int: float}``.
"""

from __future__ import annotations

import os
import re
import textwrap
import zlib
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from ...errors import InputError
from ...models.strategies import STRATEGIES

__all__ = [
    "TRACE_TYPES",
    "PALETTE",
    "STRATEGY_COLOURS",
    "OTHER_COLOURS",
    "SEED_SHADES",
    "MAX_LIGHTEN",
    "FONT",
    "NARROW_PX",
    "CHAR_EM",
    "LINE_EM",
    "SHARE_COLUMNS",
    "TEMPLATE",
    "MINUS",
    "strategy_of",
    "seed_of",
    "shade",
    "strategy_colour",
    "model_colours",
    "display_names",
    "short_labels",
    "child_colour",
    "checkpoint_look",
    "offset_label",
    "number",
    "p_text",
    "translucent",
    "offset_values",
    "check_shares",
    "summary_models",
    "model_order",
    "ai_pairs",
    "comparison_fields",
    "wrap",
    "fit_titles",
    "style",
    "reference_line",
    "equal_share_line",
    "ordered",
]


#: Paul Tol's "bright" qualitative scheme (distinguishable with the common colour-vision deficiencies, and
#: dark enough to stand out on white and against the grey reference lines), bar its pale grey.
PALETTE: tuple[str, ...] = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377")
#: One fixed hue per registered strategy; strategies not in the registry take a palette colour by name hash.
STRATEGY_COLOURS: dict[str, str] = {
    "imagenet": "#EE6677",
    "imagenet-uniform": "#4477AA",
    "imagenet-symmetric": "#228833",
    "imagenet-zflip": "#AA3377",
    "random": "#555555",
}
#: Colours of strategies outside the registry (by a hash of the name): the scheme's yellow and cyan.
OTHER_COLOURS: tuple[str, ...] = ("#CCBB44", "#66CCEE")
#: How many distinct shades a strategy's seeds cycle through (seed ``s`` gets shade ``s % SEED_SHADES``).
SEED_SHADES = 3
#: The palest shade mixes this much white into the hue (paler would vanish on white).
MAX_LIGHTEN = 0.55
FONT = dict(family="Arial, Liberation Sans, DejaVu Sans, sans-serif", size=14, color="#222222")
NARROW_PX = 560  # titles are wrapped to fit this width, so they fit the app's narrow layouts too
CHAR_EM = 0.6  # a conservative width of one character in ems (Arial averages about 0.5)
LINE_EM = 1.35  # height of one text line in ems, as plotly spaces them
SHARE_COLUMNS = ("model", "slice", "offset", "share")
TEMPLATE = "explorer"
MINUS = "\u2212"


#: The trace types the figures draw: the template keeps ``simple_white``'s look for these only. Its other 20
#: made every figure's template (copied into each figure by plotly) twice as large and twice as slow to set.
TRACE_TYPES = ("bar", "box", "contour", "heatmap", "scatter", "violin")


def _register_template() -> None:
    """Register :data:`TEMPLATE` once: plotly's ``simple_white`` for :data:`TRACE_TYPES`, with a white paper and
    plot (exports too, which otherwise take plotly's grey default), the shared font and the palette as the colour
    way. Every figure, on screen, exported or of a cohort, is drawn with it (:func:`style`)."""
    if TEMPLATE in pio.templates:
        return
    white = pio.templates["simple_white"]
    data = {kind: traces for kind, traces in white.data.to_plotly_json().items() if kind in TRACE_TYPES}
    template = go.layout.Template(layout=white.layout, data=data)
    template.layout.update(
        font=FONT,
        colorway=list(PALETTE),
        paper_bgcolor="white",
        plot_bgcolor="white",
        separators=".,",
        hoverlabel=dict(font_size=FONT["size"] - 1),
    )
    pio.templates[TEMPLATE] = template


_register_template()
_SEED = re.compile(r"(?:^|[-_])seed[-_]?(\d+)(?:$|[-_])|[-_]s(\d+)$")


def strategy_of(name: str, entry: Mapping | None = None) -> str | None:
    """A checkpoint's strategy: its summary entry's ``strategy``, else the longest registry name in its name."""
    if entry and entry.get("strategy"):
        return str(entry["strategy"])
    tokens = f"-{name}-".replace("_", "-")
    found = [s for s in STRATEGIES if f"-{s}-" in tokens]
    return max(found, key=len) if found else None


def seed_of(name: str, entry: Mapping | None = None) -> int | None:
    """A checkpoint's training seed: ``seed`` in its summary entry (or its ``training``/``recipe``), else
    ``seed-N``/``seedN``/a trailing ``-sN`` in its name; ``None`` when unknown."""
    for where in (entry or {}, (entry or {}).get("training") or {}, (entry or {}).get("recipe") or {}):
        if isinstance(where, Mapping) and isinstance(where.get("seed"), int):
            return int(where["seed"])
    match = _SEED.search(name)
    return int(match.group(1) or match.group(2)) if match else None


def shade(colour: str, k: int) -> str:
    """The ``k``-th lighter shade of ``colour`` (``#rrggbb``): ``k = 0`` is the colour itself, each step mixes in
    more white (30%, 51%, then at most :data:`MAX_LIGHTEN`). Seeds of a strategy and its debiased children take
    shades of the strategy's hue, so they read as one family.

    Raises:
        InputError: ``colour`` is not ``#rrggbb`` or ``k`` is negative.
    """
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour) or k < 0:
        raise InputError("colour", f"{colour!r} with shade {k}", "a '#rrggbb' colour and a shade k >= 0")
    amount = min(1 - 0.7**k, MAX_LIGHTEN)
    return "#" + "".join(
        f"{round(c + (255 - c) * amount):02X}" for c in (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    )


def strategy_colour(strategy: str) -> str:
    """A strategy's hue: its fixed colour, or (outside the registry) one of :data:`OTHER_COLOURS` by name hash."""
    return STRATEGY_COLOURS.get(strategy) or OTHER_COLOURS[zlib.crc32(strategy.encode()) % len(OTHER_COLOURS)]


def model_colours(
    names: Iterable[str],
    strategies: Mapping[str, str | None] | None = None,
    seeds: Mapping[str, int | None] | None = None,
) -> dict[str, str]:
    """Colour of each checkpoint: its strategy's hue, a lighter shade of it for seeds 1 and 2 (mod 3).

    Args:
        names: checkpoint names.
        strategies: ``{name: strategy}``; a name missing here is matched against the registry's names.
        seeds: ``{name: seed}``; a name missing here is searched for ``seed-N``.

    Returns:
        ``{name: "#rrggbb"}``, the same for a checkpoint whatever else is shown.
    """
    out = {}
    for name in dict.fromkeys(map(str, names)):
        strategy = (strategies or {}).get(name) or strategy_of(name)
        seed = (seeds or {}).get(name, seed_of(name))
        out[name] = shade(strategy_colour(strategy or name), seed % SEED_SHADES if seed is not None else 0)
    return out


def display_names(names: Iterable[str], summary: Mapping | None = None) -> dict[str, str]:
    """Short labels for legends and panel titles: ``imagenet-uniform, seed 2`` (the full name goes in hover
    and tables). Names whose strategy is unknown, or whose labels would collide, lose only the prefix they
    share with the others.

    Args:
        names: checkpoint names.
        summary: the analysis summary (its entries give strategy and seed), or ``None``.

    Returns:
        ``{name: label}`` with distinct labels.
    """
    entries = summary_models(summary) if summary is not None else {}
    names = list(dict.fromkeys(map(str, names)))
    labels = {}
    for name in names:
        strategy, seed = strategy_of(name, entries.get(name)), seed_of(name, entries.get(name))
        labels[name] = None if strategy is None else strategy + ("" if seed is None else f", seed {seed}")
        parent = (entries.get(name) or {}).get("parent")
        if isinstance(parent, Mapping) and name.startswith(str(parent.get("name"))):  # explorer debias' child
            p = str(parent["name"])
            base = parent.get("strategy") or strategy_of(p)
            seed = parent.get("seed") if isinstance(parent.get("seed"), int) else seed_of(p)
            labels[name] = f"{base or p}{'' if seed is None else f', seed {seed}'} → {name[len(p) :].strip('-_')}"
    counts = pd.Series([v for v in labels.values() if v]).value_counts()
    fallback = short_labels([n for n in names if not labels[n] or counts[labels[n]] > 1])
    return {n: fallback.get(n) or labels[n] or n for n in names}


def short_labels(names: Sequence[str]) -> dict[str, str]:
    """Names without the prefix they all share (``unet-mobilenet_v2-imagenet`` → ``imagenet``)."""
    names = [str(n) for n in names]
    if len(names) < 2:
        return {n: n for n in names}
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind("-"), prefix.rfind("_")) + 1
    return {n: (n[cut:] or n) for n in names}


def child_colour(parent_colour: str, rank: int = 0) -> str:
    """A debiased child's colour: its parent's hue, lighter (the ``rank``-th child of one parent lighter still)."""
    return shade(parent_colour, 1 + rank)


def checkpoint_look(names: Iterable[str], summary: Mapping | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(colours, labels)`` of the checkpoints, from their summary entries when a summary is given; a child
    whose entry names its ``parent`` (``explorer debias``) takes :func:`child_colour` of the parent's colour."""
    entries = summary_models(summary) if summary is not None else {}
    names = list(dict.fromkeys(map(str, names)))
    strategies = {n: strategy_of(n, entries.get(n)) for n in names}
    seeds = {n: seed_of(n, entries.get(n)) for n in names}
    colours = model_colours(names, strategies, seeds)
    ranks: dict[str, int] = {}
    for name in names:
        parent = (entries.get(name) or {}).get("parent")
        if isinstance(parent, Mapping) and parent.get("name"):
            p = str(parent["name"])
            base = model_colours([p], {p: parent.get("strategy")}, {p: parent.get("seed")})[p]
            colours[name] = child_colour(base, ranks.get(p, 0))
            ranks[p] = ranks.get(p, 0) + 1
    return colours, display_names(names, summary)


def offset_label(offset: int) -> str:
    """Tick label of an offset with a typographic sign: ``−1``, ``0``, ``+1``."""
    return f"+{offset}" if offset > 0 else (f"−{-offset}" if offset < 0 else "0")


def number(value: float | None, spec: str = "+.3f") -> str:
    """``value`` formatted by ``spec`` with a true minus sign (``−0.120``, as plotly draws tick labels); ``n/a``
    for a missing value."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return format(value, spec).replace("-", MINUS)


def p_text(p: float | None) -> str:
    """A p-value as text, 2 significant digits with a true minus: ``0.52``, ``0.0012``, ``2.5e−09``; ``< 1e−300`` for
    an underflowed 0."""
    if p is None or (isinstance(p, float) and p != p):
        return "n/a"
    if p == 0:
        return f"< 1e{MINUS}300"
    return number(p, ".2g") if p >= 1e-3 else number(p, ".1e")


def translucent(colour: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r, g, b, alpha)`` (a fill that lets the points over it show)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha:g})"


def offset_values(mapping: Mapping[object, object] | None, source: str) -> dict[int, float]:
    """``{offset: value}`` with int keys, sorted by offset, from int or JSON-string keys.

    Raises:
        InputError: a key is not an integer offset (``source`` names the field).
    """
    out: dict[int, float] = {}
    for key, value in (mapping or {}).items():
        try:
            out[int(key)] = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InputError(
                source, f"offset key {key!r} with value {value!r}", "integer offsets (e.g. -1, 0, 1) mapped to numbers"
            ) from exc
    return dict(sorted(out.items()))


def check_shares(shares: pd.DataFrame) -> pd.DataFrame:
    """Validate the ``shares`` table and return it with integer offsets.

    Raises:
        InputError: a column is missing or the table is empty.
    """
    missing = [c for c in SHARE_COLUMNS if c not in shares.columns]
    if missing:
        found = ", ".join(map(str, shares.columns))
        raise InputError(
            "shares",
            f"missing column(s) {', '.join(missing)} (found {found})",
            f"a table with columns {', '.join(SHARE_COLUMNS)}",
        )
    if shares.empty:
        raise InputError("shares", "the table has no rows", "one row per model × slice × offset")
    return shares.assign(offset=shares["offset"].astype(int))


def summary_models(summary: Mapping) -> dict[str, dict]:
    """The ``models`` entry of a summary.

    Raises:
        InputError: the summary has no non-empty ``models`` mapping.
    """
    models = summary.get("models") if isinstance(summary, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        raise InputError("summary", "no 'models' entry", '{"models": {NAME: {...}}, ...} as in summary.json')
    return dict(models)


def model_order(shares: pd.DataFrame | None = None, summary: Mapping | None = None) -> list[str]:
    """Models in display order: the summary's order, then any model only ``shares`` has."""
    names: list[str] = list(summary_models(summary)) if summary is not None else []
    if shares is not None:
        names += [str(m) for m in pd.unique(shares["model"])]
    return list(dict.fromkeys(names))


def ai_pairs(entry: Mapping) -> dict[int, Mapping]:
    """A model's per-pair asymmetry ``{k: {"mean", "ci95", "p", "p_min"}}`` (``asymmetry_by_pair``), by k."""
    return {int(k): v for k, v in sorted((entry.get("asymmetry_by_pair") or {}).items(), key=lambda kv: int(kv[0]))}


def comparison_fields(comp: Mapping) -> dict[str, object]:
    """One between-model comparison with fixed keys ``a, b, test, statistic, p`` first, then its extras.

    Accepts both spellings: ``{"a", "b", "p"}`` (cohort) or ``{"models": [a, b], "p"}`` (one scan).
    """
    names = [*(comp.get("models") or [comp.get("a"), comp.get("b")]), None, None]
    fixed = {
        "a": names[0],
        "b": names[1],
        "test": comp.get("test"),
        "statistic": comp.get("statistic"),
        "p": comp.get("p"),
    }
    skip = {"a", "b", "models", "test", "statistic", "p"}
    return {**fixed, **{k: v for k, v in comp.items() if k not in skip}}


def wrap(text: str, width_px: float, font_px: float) -> str:
    """``text`` broken with ``<br>`` into lines that fit ``width_px`` at ``font_px`` (estimated, conservatively:
    plotly does not wrap titles, and the width a browser gives a text is unknown until it is drawn).

    Lines break between phrases (after ``;`` or ``,``, or before an opening parenthesis) where a phrase
    fits a line, so ``sum to 1`` or ``(Li et al.)`` stay together; only a phrase longer than a line is broken
    between its words.
    """
    chars = max(int(width_px / (CHAR_EM * font_px)), 12)
    lines: list[str] = []
    for phrase in re.split(r"(?<=[;,]) | (?=\()", text or ""):
        if lines and len(lines[-1]) + 1 + len(phrase) <= chars:
            lines[-1] += " " + phrase
        else:
            lines += textwrap.wrap(phrase, chars, break_on_hyphens=False)
    return "<br>".join(lines)


def fit_titles(fig: go.Figure, width_px: float) -> go.Figure:
    """(Re)wrap the title and subtitle that :func:`style` recorded to fit ``width_px`` at the figure's fonts,
    and make the top margin hold them.

    The margin is computed from the wrapped line count rather than left to plotly's title automargin, which
    counts one subtitle line and not the tick label that pokes above the plot.
    """
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    size = fig.layout.font.size or FONT["size"]
    title_px, sub_px = size + 1, max(size - 2, 8)
    usable = width_px - 30  # the title's left pad and a little room on the right
    title = wrap(meta.get("title", ""), usable, title_px)
    subtitle = wrap(meta.get("subtitle", ""), usable, sub_px)
    lines = title.count("<br>") + 1, (subtitle.count("<br>") + 1 if subtitle else 0)
    text_px = LINE_EM * (title_px * lines[0] + sub_px * lines[1]) + 8 * bool(subtitle)
    top = 14 + text_px + size + meta.get("title_pad", 0)  # pad, text, half a tick label, subplot titles
    fig.update_layout(
        title=dict(
            text=f"<b>{title}</b>",
            font=dict(size=title_px),
            x=0,
            xanchor="left",
            xref="container",
            y=1,
            yanchor="top",
            yref="container",
            pad=dict(l=12, t=14),
            automargin=False,
            subtitle=dict(text=subtitle, font=dict(size=sub_px, color="#444444")),
        ),
        margin=dict(t=round(top)),
    )
    return fig


def style(fig: go.Figure, title: str, *, height: int, subtitle: str | None = None, title_pad: int = 0) -> go.Figure:
    """Apply the shared paper look: white template, readable fonts, a title with a subtitle above the plot
    (pushing the top margin), and a horizontal legend under the plot (pushing the bottom margin).

    Args:
        fig: the figure to style (changed in place).
        title: the title; subtitle: one explanatory line under it (both wrapped to fit narrow layouts).
        height: layout height in pixels.
        title_pad: extra pixels between subtitle and plot, for subplot titles drawn above the top panel.

    Returns:
        ``fig``.
    """
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        height=height,
        meta={"title": title, "subtitle": subtitle or "", "title_pad": title_pad},
        legend=dict(
            orientation="h",
            x=0,
            xanchor="left",
            xref="container",
            y=0,
            yanchor="bottom",
            yref="container",
            title_text="",
            font=dict(size=FONT["size"] - 1),
            entrywidthmode="pixels",
            tracegroupgap=0,
        ),  # every checkpoint is its own legend group: no gap after each
        margin=dict(l=70, r=30, b=20, autoexpand=True),
    )
    return fit_titles(fig, min(fig.layout.width or NARROW_PX, NARROW_PX))


def reference_line(fig: go.Figure, y: float, label: str, *, rows: Sequence[int] = (1,)) -> None:
    """A dotted horizontal line at ``y`` on each of ``rows``, named once in the legend (no text on the plot,
    where it would collide with the data or bar labels)."""
    line = dict(color="#888888", dash="dot", width=1.5)
    for row in rows:
        fig.add_hline(y=y, line=line, **({"row": row, "col": 1} if len(rows) > 1 else {}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=label, hoverinfo="skip"))


def equal_share_line(fig: go.Figure, n_channels: int, *, rows: Sequence[int] = (1,)) -> None:
    """Dotted reference line at ``1 / n_channels``: the share every channel gets without a preference."""
    reference_line(fig, 1.0 / n_channels, f"equal share (1/{n_channels})", rows=rows)


def ordered(values: Sequence[int]) -> list[int]:
    """Distinct offsets, ascending."""
    return sorted({int(v) for v in values})
