"""A one-page PDF summary of an analysis (no ``streamlit`` import): figures, the statistics table, the run's
parameters and the input hashes, ready to attach to a report.

Built with matplotlib (its PDF backend writes one page with embedded fonts, so no PDF-merging library is
needed); the plotly figures are placed on the page as PNG images rendered by kaleido when static export works
here, otherwise the page says so and keeps the table and parameters.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from explorer.export import figure_bytes, static_export_status  # noqa: E402
from explorer.figures.tables import format_table, stats_table  # noqa: E402

A4 = (8.27, 11.69)  # inches
#: The statistics table's columns that fit the page's width: the network's own asymmetry first.
PDF_COLUMNS = ("label", "strategy", "channel asymmetry [95% CI]", "anatomy asymmetry [95% CI]", "AI [95% CI]", "Dice")


def summary_pdf(analysis, figures: Mapping[str, go.Figure], *, parameters: Mapping[str, object]) -> bytes:
    """One A4 page: title, parameters and hashes, the per-checkpoint statistics, up to two figures.

    Args:
        analysis: the (shown) analysis.
        figures: figures to place, in order (the first two are used).
        parameters: the run's parameters as recorded in ``parameters.json``.

    Returns:
        The PDF's bytes.
    """
    fig = plt.figure(figsize=A4)
    fig.text(0.05, 0.97, "explorer — 2D+ attribution asymmetry: summary", fontsize=14, weight="bold", va="top")
    inputs = analysis.summary.get("inputs", {})
    lines = [f"Volume: {analysis.volume.source}  (sha256 {analysis.volume.sha256[:16]}…)",
             f"Mask: {analysis.mask.source if analysis.mask is not None else 'none'}",
             f"Method {analysis.spec.method} · target {analysis.spec.target} · axis {analysis.axis} · "
             f"z-flip {analysis.spec.zflip} · device {inputs.get('device', '?')}"]
    lines += [f"{name}: sha256 {entry.get('checkpoint_sha256', '')[:16]}… · strategy {entry.get('strategy')}"
              for name, entry in analysis.summary["models"].items()]
    extra = {k: v for k, v in parameters.items() if k not in {"checkpoints", "volume"}}
    lines.append("Parameters: " + ", ".join(f"{k}={v}" for k, v in extra.items())[:150])
    fig.text(0.05, 0.935, "\n".join(lines), fontsize=7, va="top", family="monospace")
    table = format_table(stats_table(analysis.summary))
    table = table[[c for c in PDF_COLUMNS if c in table.columns]]
    ax = fig.add_axes((0.05, 0.60, 0.9, 0.18))
    ax.axis("off")
    cells = ax.table(cellText=table.astype(str).values, colLabels=list(table.columns), loc="upper center")
    cells.auto_set_font_size(False)
    cells.set_fontsize(6.5)
    cells.scale(1, 1.2)
    available, message = static_export_status()
    boxes = [(0.05, 0.31, 0.9, 0.28), (0.05, 0.02, 0.9, 0.28)]
    for box, (name, figure) in zip(boxes, list(figures.items())[:2], strict=False):
        ax = fig.add_axes(box)
        ax.axis("off")
        if available:
            ax.imshow(mpimg.imread(io.BytesIO(figure_bytes(figure, "png", scale=2)), format="png"))
        else:
            ax.text(0.5, 0.5, f"{name}: static figure export unavailable ({message})", ha="center", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf")
    plt.close(fig)
    return buffer.getvalue()
