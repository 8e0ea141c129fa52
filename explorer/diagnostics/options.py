"""The diagnostics registry and the options that say which ones an analysis computes.

Kept apart from :mod:`explorer.diagnostics.run` so that :mod:`explorer.spec` can hold the options without
importing the code that runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["Diagnostic", "DIAGNOSTICS", "DiagnosticOptions"]


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic: registry key, one-line definition, reference, and whether it must be asked for."""

    name: str
    description: str
    reference: str
    opt_in: bool


DIAGNOSTICS: dict[str, Diagnostic] = {
    d.name: d
    for d in (
        Diagnostic(
            "background",
            "fraction of attribution mass outside the foreground (mask, else prediction), per channel and in total",
            "Bassi et al., arXiv 2401.08409 (ISNet)",
            False,
        ),
        Diagnostic(
            "logits",
            "histograms of foreground/background (TP/FN/FP) logits and the train → held-out "
            "shift of the foreground logits",
            "Li, Kamnitsas, Glocker, arXiv 2102.10365",
            False,
        ),
        Diagnostic(
            "cam",
            "Grad-CAM on one layer with the standard and the |logit| target",
            "Zhang, Bieri, Günther, arXiv 2403.14435",
            True,
        ),
        Diagnostic(
            "sanity",
            "rank correlation of the maps after randomising the decoder, then the encoder",
            "Adebayo et al., NeurIPS 2018, arXiv 1810.03292",
            True,
        ),
    )
}


@dataclass(frozen=True)
class DiagnosticOptions:
    """What the diagnostics of one analysis compute.

    Attributes:
        dilation: grow the foreground by this many pixels before measuring background attention.
        cam: compute Grad-CAM for every slice.
        cam_layer: the Grad-CAM layer (None: :func:`explorer.diagnostics.cam.default_cam_layer`).
        sanity: run the parameter-randomisation sanity check.
        sanity_slices: slices used by the sanity check.
    """

    dilation: int = 0
    cam: bool = False
    cam_layer: str | None = None
    sanity: bool = False
    sanity_slices: int = 12

    def __post_init__(self) -> None:
        if not isinstance(self.dilation, int) or self.dilation < 0:
            raise InputError("--dilation", f"{self.dilation!r}", "a dilation of 0 or more pixels")
        if not isinstance(self.sanity_slices, int) or self.sanity_slices < 1:
            raise InputError("--sanity-slices", f"{self.sanity_slices!r}", "a positive number of slices")
