"""What the numbers mean: one "How to read this" expander per view, for a radiologist and an ML engineer.

The texts follow docs/definitions.md (the definitions) and say what each number does not cover.
"""

from __future__ import annotations

import streamlit as st

AI = (
    "**Asymmetry index (AI)** — of the attribution that goes to the two neighbouring slices, how much more "
    "goes to the previous slice (z−1) than to the next (z+1): `AI = (s₋₁ − s₊₁) / (s₋₁ + s₊₁)`, from −1 to 1. "
    "**Positive**: the network leans on the slice *before*; **negative**: on the slice *after*; **0**: both "
    "alike. As a rule of thumb |AI| below 0.05 is negligible, 0.05–0.2 modest, above 0.2 large: one "
    "neighbour gets half again as much as the other."
)
SHARE = (
    "**Share** — the fraction of one slice's attribution that goes to each input channel (the slices z−1, z, "
    "z+1 packed into the network's three input channels); the shares of a slice sum to 1, so 1/3 each means "
    "no preference."
)
CI = (
    "**Why the 95% interval is narrow, and what it does not cover** — it comes from the slices of *this one "
    "scan* seen by *one trained model*. Neighbouring slices are correlated (they look alike), so the interval "
    "is too narrow for a claim about patients in general, and one model per strategy says nothing about how "
    "another training run (seed) would behave. For a claim about an initialisation strategy use several "
    "scans and several models per strategy: the **Cohort** view."
)
GRADIENT = (
    "**Why occlusion can disagree with saliency** — they answer different questions. Saliency "
    "(gradient) asks *how sensitive* the output is to each input slice; occlusion asks *how much the "
    "output changes when a slice is removed*, i.e. whether the network *uses* it. The first layer is "
    "linear, so when the first convolution's kernels for z−1 and z+1 are equal (uniform or symmetric "
    "initialisation) their gradients are identical pixel for pixel: **saliency AI = 0 by construction**, "
    "whatever the data; what remains after training measures only how far training moved that first "
    "convolution. Whether the network relies on one neighbour more is a perturbation question: "
    "occlusion and z-flip."
)
SPLIT = (
    "**Channel asymmetry and anatomy asymmetry** — the AI of one scan mixes two things: the network "
    "preferring one input channel, and the scan itself differing above and below the slice. Every analysis "
    "also runs the windows with z−1 and z+1 swapped. Averaging the two AIs (in channel order) gives the "
    "**channel asymmetry**, which is exactly 0 for a network that treats its two neighbours alike, whatever "
    "the scan; half their difference is the **anatomy asymmetry**, exactly 0 for a scan whose slices above "
    "and below are equal. The network's bias is the channel asymmetry."
)
MEASURE = (
    "**Which measure is shown** — by default *occlusion*: each input slice in turn is replaced by its mean "
    "and the change of the output is measured, i.e. how much the prediction *depends* on that slice. It "
    "recovered the planted direction on networks trained to depend on one known slice (`explorer "
    "validate`, docs/validation.md). *Saliency* (the paper's measure) is one click away in the sidebar: "
    "it reads the first convolution's per-channel weights, and on those networks it gave the wrong sign "
    "(ImageNet initialisation) or nothing (uniform initialisation)."
)
DICE = (
    "**Dice** — overlap of the prediction with the mask, `2|P∩T| / (|P|+|T|)`: 1 is perfect, 0 no overlap. "
    "**z-flip Dice** — the same overlap between the prediction on the normal input and on the input with z−1 "
    "and z+1 swapped: 1 means the segmentation does not depend on the direction of the slice axis; lower "
    "values mean the network treats 'above' and 'below' differently."
)

VIEW_HELP = {
    "Distributions": [SHARE, AI, SPLIT, MEASURE, GRADIENT, CI],
    "Debias": [
        "**Surgery** ties the first convolution's kernels of each mirrored pair of neighbours (symmetric) or "
        "of every channel (uniform): nothing after the first convolution sees the channels, so the child is "
        "exactly invariant to swapping its neighbours and its channel asymmetry is 0 by construction. Its "
        "cost is the change in held-out Dice (the block of slices `explorer train` holds out, or the "
        "held-out subjects of a cohort) and in the prediction. **Finetune** keeps that tie while training; "
        "**retrain** starts again from a symmetric initialisation, which training may undo.",
        SPLIT,
        CI,
    ],
    "Along the axis": [
        SHARE,
        "Each line follows one checkpoint through the volume: a share that drifts with the "
        "slice index follows the anatomy; a constant offset between neighbours follows the "
        "network. Slices where nothing is predicted are skipped (gaps).",
        CI,
    ],
    "Slice viewer": [
        "The top row shows the slice with each checkpoint's prediction tinted in its colour and the "
        "mask outlined. Below, one row per checkpoint: its attribution for each input channel "
        "(z−1, z, z+1) over the anatomy — bright where the output depends most on that slice (gradient "
        "methods pixel by pixel; occlusion has one value per slice, spread evenly over it).",
        "With **one scale per row** each checkpoint's maps use their own colour range (compare the "
        "channels of one checkpoint); with one shared scale the rows compare with each other (a "
        "random-initialised network's large gradients then darken the others).",
    ],
    "3D viewer": [
        "Multiplanar view (axial, coronal, sagittal) and a 3D rendering of the scan with overlays: the "
        "mask, a checkpoint's prediction and its attribution for one input channel. Click to move the "
        "crosshair; letters at the edges give the patient orientation (L/R, A/P, S/I). "
        "**Radiological** shows the patient's right on the screen's left, as on a reading station; "
        "**neurological** the reverse.",
        "The threshold hides attribution below a fraction of its "
        "largest value, so only where the network looks most remains.",
    ],
    "First conv": [
        "The L1 norm of the first convolution's kernel per input channel, normalised to sum to 1: "
        "where the network's weights start from (ImageNet's R, G, B are 0.32, 0.45, 0.23 — already "
        "asymmetric) and where training left them. Equal z−1 and z+1 shares make saliency AI zero by "
        "construction.",
        GRADIENT,
    ],
    "Statistics": [
        AI,
        SPLIT,
        "**p** — block sign-flip test that the mean AI is 0 (per checkpoint) or that two "
        "checkpoints' |AI| agree (Holm-adjusted across the pairs): blocks of neighbouring slices, as "
        "long as the bootstrap's, change sign together, because neighbouring slices are not independent "
        "evidence. **p min** is the smallest p this scan's blocks allow. Small p says the asymmetry is "
        "consistent along the scan, not that it is large: read the AI for the size. The **mass-weighted** "
        "AI weighs each slice by its attribution mass, so near-empty edge slices count little.",
        CI,
        DICE,
    ],
    "Diagnostics": [
        "**Background attention** — the fraction of attribution that falls outside the (dilated) "
        "foreground: high values mean the network looks at context, not the structure. **Logit "
        "shift** — whether the network is less confident on slices it was not trained on. "
        "**Grad-CAM** and the **sanity check** (maps that barely change when the weights are "
        "randomised reflect the image more than the model) run on request.",
        DICE,
    ],
    "Export": [
        "Everything shown, as files: figures (PNG, SVG, PDF, HTML), tables (CSV), NIfTI maps on the input "
        "scan's grid (open them in Slicer, ITK-SNAP or NiiVue over the scan), and a report zip with a "
        "one-page PDF summary, the parameters and the input hashes."
    ],
}


def how_to_read(view: str) -> None:
    """One collapsed "How to read this" expander for ``view`` (nothing for a view without a text)."""
    texts = VIEW_HELP.get(view)
    if texts:
        with st.expander("How to read this"):
            st.markdown("\n\n".join(texts))
