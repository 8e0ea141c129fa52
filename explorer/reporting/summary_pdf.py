"""A one-page PDF summary of an analysis (no ``streamlit`` import): the inputs and their hashes, the run's
parameters, every value of the statistics table, and up to two figures, ready to attach to a report.

Laid out with reportlab's ``Table`` and ``Paragraph``, which wrap text inside their cells, so long names and
parameter lists stay inside the page and their column. The statistics table is transposed (one row per
quantity, one column per checkpoint, at most :data:`MODELS_PER_TABLE` per table) so every column of
:func:`explorer.reporting.figures.tables.stats_table` fits the width. DejaVu Sans (shipped with matplotlib) is embedded,
so the typographic minus and ± print everywhere. The plotly figures are placed as PNG images rendered by
kaleido when static export works here, otherwise the page says so. If everything does not fit one A4 page,
the whole page is scaled down rather than cut.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib
import plotly.graph_objects as go
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, KeepInFrame, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from explorer.reporting.export import figure_bytes, static_export_status
from explorer.reporting.figures.tables import format_table, stats_table

__all__ = [
    "MARGIN",
    "WIDTH",
    "MODELS_PER_TABLE",
    "NAME_WIDTH",
    "FIGURE_HEIGHT",
    "GRID",
    "summary_rows",
    "statistics_rows",
    "summary_pdf",
]


MARGIN = 1.2 * cm
WIDTH = A4[0] - 2 * MARGIN
#: Checkpoints per statistics table (columns beside the quantity's name); more go in a further table.
MODELS_PER_TABLE = 5
NAME_WIDTH = 6 * cm  # the inputs' first column: a zoo checkpoint's full name on one line
FIGURE_HEIGHT = 7.5 * cm  # the most a figure may take
GRID = colors.HexColor("#BBBBBB")


@cache
def _styles() -> dict[str, ParagraphStyle]:
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(fonts / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(fonts / "DejaVuSans-Bold.ttf")))
    base = ParagraphStyle("body", fontName="DejaVuSans", fontSize=7.5, leading=9.5, splitLongWords=0)
    return {
        "body": base,
        "title": ParagraphStyle("title", base, fontName="DejaVuSans-Bold", fontSize=13, leading=16, spaceAfter=6),
        "heading": ParagraphStyle(
            "heading", base, fontName="DejaVuSans-Bold", fontSize=9, leading=11, spaceBefore=6, spaceAfter=3
        ),
        "cell": ParagraphStyle("cell", base, fontSize=6.8, leading=8.2),
        "head": ParagraphStyle("head", base, fontName="DejaVuSans-Bold", fontSize=6.8, leading=8.2),
    }


def _p(text: object, style: str = "cell") -> Paragraph:
    return Paragraph(escape(str(text)), _styles()[style])


def _value(text: str, style: str = "cell") -> Paragraph:
    """A name cell (headers, the first column, inputs) that may break inside a word too long for its column."""
    return Paragraph(escape(text), ParagraphStyle(f"{style}-long", _styles()[style], splitLongWords=1))


def _table(rows: list[list[object]], widths: list[float], *, header: bool) -> Table:
    """A grid of wrapping cells (the first row bold when ``header``); names (a header, the first column, a
    table without a header) may break inside a word, numbers only at spaces."""
    cells = [
        [
            _value(str(v), "head" if header and i == 0 else "cell") if not header or i == 0 or j == 0 else _p(v)
            for j, v in enumerate(row)
        ]
        for i, row in enumerate(rows)
    ]
    table = Table(cells, colWidths=widths, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, GRID),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
            + ([("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE"))] if header else [])
        )
    )
    return table


def summary_rows(analysis, parameters: Mapping[str, object]) -> list[tuple[str, str]]:
    """``(field, value)`` of the inputs section: volume, mask, run, each checkpoint's hash, every parameter
    (one row each)."""
    inputs = analysis.summary.get("inputs", {})
    rows = [
        ("Volume", f"{analysis.volume.source} · sha256 {analysis.volume.sha256}"),
        ("Mask", analysis.mask.source if analysis.mask is not None else "none"),
        (
            "Run",
            f"method {analysis.spec.method} · target {analysis.spec.target} · axis {analysis.axis} · "
            f"z-flip {analysis.spec.zflip} · device {inputs.get('device', '?')}",
        ),
    ]
    rows += [
        (name, f"strategy {stats.strategy} · sha256 {stats.checkpoint_sha256 or '?'}")
        for name, stats in analysis.model_stats.items()
    ]
    rows += [(f"parameter {k}", _text(v)) for k, v in parameters.items() if k not in {"checkpoints", "volume"}]
    return rows


def _text(value: object) -> str:
    """A parameter's value, lists and mappings spaced after each comma so that they wrap."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(map(_text, value))
    return str(value)


def statistics_rows(summary: Mapping) -> list[list[list[str]]]:
    """The statistics table transposed, as text: one table (header row, then one row per quantity) per
    :data:`MODELS_PER_TABLE` checkpoints; every column of :func:`format_table` but the full name, which the
    inputs section lists with its hash."""
    table = format_table(stats_table(summary)).set_index("label")
    table = table.drop(columns=[c for c in ("model",) if c in table.columns]).fillna("")
    labels = list(table.index)
    out = []
    for start in range(0, len(labels), MODELS_PER_TABLE):
        chunk = labels[start : start + MODELS_PER_TABLE]
        out.append(
            [["checkpoint", *chunk]]
            + [[column, *(str(table.at[label, column]) for label in chunk)] for column in table.columns]
        )
    return out


def summary_pdf(analysis, figures: Mapping[str, go.Figure], *, parameters: Mapping[str, object]) -> bytes:
    """One A4 page: title, inputs with their hashes and the parameters, the statistics, up to two figures.

    Args:
        analysis: the (shown) analysis.
        figures: figures to place, in order (the first two are used).
        parameters: the run's parameters as recorded in ``parameters.json``.

    Returns:
        The PDF's bytes.
    """
    story: list = [
        _p("explorer — 2D+ attribution asymmetry: summary", "title"),
        _p("Inputs", "heading"),
        _table([list(r) for r in summary_rows(analysis, parameters)], [NAME_WIDTH, WIDTH - NAME_WIDTH], header=False),
        _p("Statistics per checkpoint", "heading"),
    ]
    for rows in statistics_rows(analysis.summary):
        first = 3.4 * cm
        story += [
            _table(rows, [first] + [(WIDTH - first) / (len(rows[0]) - 1)] * (len(rows[0]) - 1), header=True),
            Spacer(1, 4),
        ]
    chosen = list(figures.items())[:2]
    if chosen:
        story.append(_p("Figures", "heading"))
    available, message = static_export_status()
    for name, figure in chosen:
        if not available:
            story.append(_p(f"{name}: static figure export unavailable ({message})", "body"))
            continue
        image = Image(io.BytesIO(figure_bytes(figure, "png", scale=2)))
        scale = min(WIDTH / image.imageWidth, FIGURE_HEIGHT / image.imageHeight)
        image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
        story += [image, Spacer(1, 4)]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title="explorer summary",
        author="explorer",
    )
    doc.build([KeepInFrame(doc.width, doc.height, story, mode="shrink")])
    return buffer.getvalue()
