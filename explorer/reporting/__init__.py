"""Reporting: output folders, figures, static export, the summary PDF, NIfTI overlays and the replay of
recorded runs."""
