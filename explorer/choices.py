"""The names (and one-line descriptions) of the package's registries, without the code behind them.

The command line needs every registry's names to build its parser (the choices of ``--strategy``, ``--arch``,
``--method``, ...) and its help, but the registries themselves live beside their code: models, losses and
attribution methods import torch, smp and timm, which cost seconds. This module holds only the names, so that
``explorer --help``, a misspelt option and a bad volume path are answered without importing any of them.

Plain name lists are defined here once and the modules that use them import them (devices, executors, the
equivalence margin, regimes, validation defaults, the default method, debias modes and variants). The registries
whose entries are code (methods, targets, strategies, losses, normalisations, precisions, presets, axes,
architectures) keep their names beside that code, and the names below are a copy: ``tests/test_cli_lines.py``
checks that every one equals its registry (same names, same order), so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = [
    "ARCHS",
    "AXES",
    "DEBIAS_MODES",
    "DEBIAS_VARIANTS",
    "DEFAULT_MARGIN",
    "DEFAULT_METHOD",
    "DEVICE_CHOICES",
    "EXECUTORS",
    "LOSSES",
    "METHODS",
    "NORMALISATIONS",
    "PRECISIONS",
    "PRESETS",
    "REGIMES",
    "STRATEGIES",
    "TARGETS",
    "VALIDATION_METHODS",
    "VALIDATION_STRATEGIES",
]

#: :data:`explorer.device.DEVICE_CHOICES`
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: the keys of :data:`explorer.device.PRECISIONS`
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: the keys of :data:`explorer.io.normalise.NORMALISATIONS`
NORMALISATIONS = ("zscore", "minmax", "ct-brain", "ct-soft-tissue", "ct-lung", "ct-bone", "imagenet")
#: the keys of :data:`explorer.io.volume.AXES`
AXES = ("sagittal", "coronal", "axial")
#: the keys of :data:`explorer.models.build.ARCHS` (smp's architectures, in smp's order)
ARCHS = (
    "Unet",
    "UnetPlusPlus",
    "MAnet",
    "Linknet",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "PAN",
    "UPerNet",
    "Segformer",
    "DPT",
)
#: the keys of :data:`explorer.models.strategies.STRATEGIES`
STRATEGIES = ("random", "imagenet", "imagenet-uniform", "imagenet-symmetric", "imagenet-zflip")
#: the keys of :data:`explorer.training.losses.LOSSES`
LOSSES = ("bce-dice", "asymmetric-focal", "asymmetric-margin")
#: the keys of :data:`explorer.reporting.export.PRESETS`
PRESETS = ("screen", "paper-single", "paper-double")
#: :data:`explorer.cohort.EXECUTORS`
EXECUTORS = ("local", "ray")
#: :data:`explorer.cohort.summary.DEFAULT_MARGIN`
DEFAULT_MARGIN = 0.05
#: :data:`explorer.validation.planted.REGIMES`
REGIMES = ("independent", "correlated")
#: :data:`explorer.validation.spec.DEFAULT_METHODS`
VALIDATION_METHODS = (
    "saliency",
    "input_x_gradient",
    "integrated_gradients:steps=16",
    "occlusion:replace=mean",
    "occlusion:replace=other",
    "occlusion:replace=constant",
    "occlusion:replace=centre",
)
#: :data:`explorer.validation.spec.DEFAULT_STRATEGIES`
VALIDATION_STRATEGIES = ("imagenet", "imagenet-uniform", "random")
#: :data:`explorer.attribution.methods.DEFAULT_METHOD`
DEFAULT_METHOD = "occlusion"
#: name → description of :data:`explorer.attribution.methods.METHODS`
METHODS: dict[str, str] = {
    "saliency": "|∂target/∂input| (Simonyan et al. 2014)",
    "gradient": "signed ∂target/∂input",
    "input_x_gradient": "input × ∂target/∂input",
    "integrated_gradients": "path integral of gradients from a constant baseline (captum; the convergence delta "
    "is recorded)",
    "smoothgrad": "mean |gradient| over noisy copies of the input (noise σ = sigma × the window's intensity range, "
    "seeded per slice)",
    "occlusion": "channel ablation: |Δtarget| when one channel is replaced; replace=constant|centre|other|blur|mean",
}
#: name → description of :data:`explorer.attribution.methods.TARGETS`
TARGETS: dict[str, str] = {
    "predicted": "sum of logits over the predicted foreground (slice skipped if none)",
    "mask": "sum of logits over the ground-truth mask (slice skipped if the mask is empty)",
    "all": "sum of all logits",
    "abs": "sum of |logit| over all pixels (binary-CAM style, evidence for either side)",
}
#: :data:`explorer.debias.MODES` (first-conv surgery mode → what it does)
DEBIAS_MODES: dict[str, str] = {
    "symmetric": "kernels of offsets -k and +k both set to their mean; the centre keeps its own",
    "uniform": "every input channel's kernel set to the mean over channels",
}
#: :data:`explorer.debias.VARIANTS` (debiasing variant → what it does)
DEBIAS_VARIANTS: dict[str, str] = {
    "surgery": "first-conv surgery only, no training: a what-if of the parent made exactly symmetric",
    "finetune": "the surgery, then fine-tuned (first conv kept tied) with early stopping on a validation split",
    "retrain": "trained from scratch with a symmetric strategy on the parent's recipe and the user's data",
}
