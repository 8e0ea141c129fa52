"""Figures as pure functions of data (``shares``, ``summary``, slice arrays) → plotly figures and tables.

Nothing here imports streamlit; the app, the CLI and the report all call these same functions.
"""

from .slice_view import SliceLook, slice_view_figure, upright
from .style import (
    PALETTE,
    STRATEGY_COLOURS,
    display_names,
    model_colours,
    offset_label,
    shade,
    short_labels,
    strategy_colour,
)
from .summary import (
    analysis_figures,
    distribution_figure,
    edge_sensitivity_figure,
    first_conv_figure,
    share_along_axis_figure,
)
from .tables import comparison_table, stats_table

__all__ = [
    "PALETTE",
    "STRATEGY_COLOURS",
    "analysis_figures",
    "comparison_table",
    "display_names",
    "distribution_figure",
    "edge_sensitivity_figure",
    "first_conv_figure",
    "model_colours",
    "offset_label",
    "shade",
    "share_along_axis_figure",
    "short_labels",
    "SliceLook",
    "slice_view_figure",
    "stats_table",
    "strategy_colour",
    "upright",
]
