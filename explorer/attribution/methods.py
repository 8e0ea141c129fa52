"""Attribution methods and targets (registries) and their computation on one batch of 2D+ windows.

Shapes: ``x`` is a window batch ``(B, C, H, W)`` (channel ``i`` = slice ``z + offsets[i]``, padded);
logits are ``(B, 1, H, W)`` (single-logit binary models); a *selection* is ``(B, H, W)`` float, the pixels
(weights) whose logits make up the target; an attribution ``A`` has the shape of ``x``.

Definitions (docs/definitions.md). Target, a scalar per slice: ``predicted`` = Σ logits over predicted
foreground (logit > 0); ``mask`` = Σ logits over ground-truth pixels; ``all`` = Σ logits; ``abs`` = Σ |logit|.
Every selection is restricted to the unpadded slice (:func:`valid_region`): the rows and columns added to
reach a multiple of 32 are not part of the image, so their logits are never explained.
Methods: ``saliency`` |∂T/∂x|, ``gradient`` ∂T/∂x, ``input_x_gradient`` x·∂T/∂x, ``integrated_gradients``
(captum, constant baseline), ``smoothgrad`` mean |∂T/∂x| over Gaussian-noised copies (noise seeded per slice
so a slice's result does not depend on its batch), ``occlusion`` channel ablation (as captum's ``FeatureAblation``:
each channel replaced by the baseline, ``Δ`` spread evenly over the slice's pixels so its mass is ``|ΔT|``).

In eval mode a sample's logits depend only on its own window, so the gradient of ``Σ_b T_b`` w.r.t. the
batch is the per-sample gradient: the gradient methods need one forward and one backward per batch, and
that same forward gives the prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import choices
from ..errors import InputError, unknown_name
from .params import merge_params
from .windows import Padding

if TYPE_CHECKING:
    from ..spec import RunSpec

__all__ = [
    "Target",
    "TARGETS",
    "Batch",
    "valid_region",
    "foreground_logit",
    "target_forward",
    "Baseline",
    "OCCLUSION_BASELINES",
    "occlusion_baselines",
    "ablated_copies",
    "occlusion_deltas",
    "Method",
    "METHODS",
    "DEFAULT_METHOD",
    "target_selection",
    "Explanation",
    "explain_batch",
    "get_method",
    "get_target",
    "require_truth",
    "resolve_params",
]


@dataclass(frozen=True)
class Target:
    """What is explained: a scalar per slice built from the logits.

    Attributes:
        name: registry key.
        description: one line for the UI and ``--help``.
        uses_mask: needs a ground-truth mask.
        absolute: explain ``|logit|`` instead of the logit.
        select: ``(prediction (B,H,W) bool, mask (B,H,W) bool | None) -> (B,H,W) float`` pixel selection.
    """

    name: str
    description: str
    uses_mask: bool
    absolute: bool
    select: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] = field(repr=False)


def _mask_selection(pred: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    require_truth("mask", mask is not None)
    return mask.float()


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "predicted",
            "sum of logits over the predicted foreground (slice skipped if none)",
            False,
            False,
            lambda pred, mask: pred.float(),
        ),
        Target(
            "mask",
            "sum of logits over the ground-truth mask (slice skipped if the mask is empty)",
            True,
            False,
            _mask_selection,
        ),
        Target("all", "sum of all logits", False, False, lambda pred, mask: torch.ones_like(pred, dtype=torch.float)),
        Target(
            "abs",
            "sum of |logit| over all pixels (binary-CAM style, evidence for either side)",
            False,
            True,
            lambda pred, mask: torch.ones_like(pred, dtype=torch.float),
        ),
    )
}


@dataclass(frozen=True)
class Batch:
    """One batch handed to a method (all tensors on the model's device).

    Attributes:
        model: prepared eval-mode model.
        x: windows ``(B, C, H, W)``.
        selection: target pixels ``(B, H, W)`` float, fixed from the unperturbed prediction.
        absolute: explain ``|logit|``.
        slices: stack index of each sample (seeds per-slice noise).
        pixels: unpadded pixels per slice (occlusion spreads ``ΔT`` over them).
        params: the method's resolved parameters.
        span: intensity range ``max - min`` of each window ``(B,)`` (SmoothGrad's noise scale).
        reversed: the windows' channels are reversed (the engine's reversed pass): SmoothGrad reverses its
            noise too, so that a network invariant to the reversal gets the same attribution exactly.
    """

    model: nn.Module
    x: torch.Tensor
    selection: torch.Tensor
    absolute: bool
    slices: tuple[int, ...]
    pixels: int
    params: dict[str, Any]
    span: torch.Tensor
    reversed: bool = False


def valid_region(x: torch.Tensor, padding: Padding | None) -> torch.Tensor:
    """``(H, W)`` float on ``x``'s device: 1 on the slice's own pixels, 0 on the padding of windows ``x``."""
    valid = torch.zeros(x.shape[-2:], dtype=torch.float, device=x.device)
    (valid if padding is None else padding.crop(valid)).fill_(1.0)  # crop returns a view
    return valid


def foreground_logit(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The foreground logit map ``(B, H, W)`` of a single-logit model's output ``(B, 1, H, W)`` on windows ``x``.

    Raises:
        InputError: the output is not one tensor, has more than one channel, or differs from ``x`` in height
            or width (an FPN whose ``upsampling`` is not 4): attributions and masks live on the input's pixels.
    """
    if not isinstance(logits, torch.Tensor):
        raise InputError("checkpoint", f"model output is a {type(logits).__name__}", "one logits tensor")
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise InputError(
            "checkpoint",
            f"model output has shape {tuple(logits.shape)}",
            "a binary segmentation model with one output logit (classes=1)",
        )
    if logits.shape[-2:] != x.shape[-2:]:
        raise InputError(
            "checkpoint",
            f"model maps windows of {x.shape[-2]} × {x.shape[-1]} pixels to logits of "
            f"{logits.shape[-2]} × {logits.shape[-1]}",
            "logits of the input's size",
        )
    return logits[:, 0]


def target_forward(model: nn.Module, absolute: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A forward wrapper ``(x, selection) -> (B,)``: the target scalar of each sample (handed to captum)."""

    def forward(x: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
        fg = foreground_logit(model(x.contiguous(memory_format=torch.channels_last)), x)
        return ((fg.abs() if absolute else fg) * selection).flatten(1).sum(1)

    return forward


def _integrated_gradients(b: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    from captum.attr import IntegratedGradients  # here: captum costs ~0.8 s to import and saliency needs none of it

    ig = IntegratedGradients(target_forward(b.model, b.absolute))
    attr, delta = ig.attribute(
        b.x,
        baselines=float(b.params["baseline"]),
        n_steps=int(b.params["steps"]),
        additional_forward_args=(b.selection,),
        internal_batch_size=len(b.x) * 4,
        return_convergence_delta=True,
    )
    return attr, {"convergence_delta": delta.detach().abs()}


def _smoothgrad(b: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    forward = target_forward(b.model, b.absolute)
    shape = (int(b.params["samples"]), *b.x.shape[1:])
    seed = int(b.params["seed"]) * 100_003
    noise = torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(seed + z)) for z in b.slices], dim=1
    ).to(b.x.device)  # (samples, B, C, H, W)
    noise = noise.flip(2) if b.reversed else noise
    sigma = float(b.params["sigma"]) * b.span  # Smilkov et al. 2017: σ as a fraction of the input's range
    total = torch.zeros_like(b.x)
    for sample in noise:
        xn = (b.x + sigma.view(-1, 1, 1, 1) * sample).requires_grad_(True)
        (grad,) = torch.autograd.grad(forward(xn, b.selection).sum(), xn)
        total += grad.abs()
    return total / shape[0], {"noise_sigma": sigma}


def _constant(x: torch.Tensor, inside: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return torch.full_like(x, float(p["baseline"]))


def _centre(x: torch.Tensor, inside: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    centre = x.shape[1] // 2
    return x[:, centre : centre + 1].expand_as(x)


def _own_mean(x: torch.Tensor, inside: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    return ((x * inside).sum(dim=(2, 3), keepdim=True) / inside.sum()).expand_as(x)


def _blurred(x: torch.Tensor, inside: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
    # a normalised convolution, so padded pixels do not bleed into the slice's border
    sigma = float(p["blur_sigma"])
    return _blur(x * inside, sigma) / _blur(inside.expand_as(x), sigma).clamp_min(1e-12)


@dataclass(frozen=True)
class Baseline:
    """What an occluded channel is replaced by (the ``replace`` parameter of ``occlusion``).

    Attributes:
        description: one line for the UI and ``--help``.
        build: ``(x (B, C, H, W), inside (H, W) float, params) -> (B, C, H, W)``: the replacement of every
            channel, computed over the slice's own pixels ``inside``.
    """

    description: str
    build: Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor] = field(repr=False)


#: The occlusion baselines by name (``occlusion``'s ``replace`` parameter).
OCCLUSION_BASELINES: dict[str, Baseline] = {
    "constant": Baseline("the constant `baseline` (a flat image, far from any real slice)", _constant),
    "centre": Baseline("the centre slice (the neighbour carries no information beyond slice z)", _centre),
    "other": Baseline(
        "the mirrored neighbour (-k <-> +k; the centre is unchanged, so its share is 0)", lambda x, inside, p: x.flip(1)
    ),
    "blur": Baseline(
        "a Gaussian-blurred copy of itself (sigma `blur_sigma` pixels: only coarse content left)", _blurred
    ),
    "mean": Baseline("its own mean intensity (per slice)", _own_mean),
}


def occlusion_baselines(
    x: torch.Tensor, replace: str, constant: float, blur_sigma: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """What each channel of the windows ``x`` ``(B, C, H, W)`` is replaced by when it is occluded.

    ``valid`` ``(H, W)`` (1 on the slice's own pixels, 0 on padding; None = no padding): the mean and the blur
    are taken over the slice's own pixels, and padded pixels keep their value, so the result does not depend
    on how the slice was padded.

    Written by hand: captum's ``FeatureAblation`` takes any baseline tensor but builds none of these 2D+ ones.
    """
    inside = torch.ones(x.shape[-2:], dtype=x.dtype, device=x.device) if valid is None else valid.to(x.dtype)
    baseline = OCCLUSION_BASELINES[replace].build(x, inside, {"baseline": constant, "blur_sigma": blur_sigma})
    return torch.where(inside > 0, baseline, x)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel of ``x`` ``(B, C, H, W)`` (edges replicated)."""
    radius = max(1, int(round(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    flat = x.reshape(-1, 1, *x.shape[2:])
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(x.shape)


def ablated_copies(x: torch.Tensor, baselines: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """The windows ``x`` ``(B, C, H, W)`` with one channel replaced by its baseline, channel after channel:
    ``(n·B, C, H, W)`` ordered channel-major, and the ``n`` channels whose baseline differs from the channel
    (replacing a channel by itself, e.g. the centre under ``centre`` or ``other``, changes nothing: Δ = 0
    without a forward)."""
    channels = [c for c in range(x.shape[1]) if not torch.equal(baselines[:, c], x[:, c])]
    copies = x.unsqueeze(0).repeat(len(channels), 1, 1, 1, 1)
    for i, c in enumerate(channels):
        copies[i, :, c] = baselines[:, c]
    return copies.flatten(0, 1), channels


def occlusion_deltas(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, reference: torch.Tensor, baselines: torch.Tensor
) -> torch.Tensor:
    """``ΔT[b, c] = T(x_b) − T(x_b with channel c replaced)`` ``(B, C)`` from one batched no-grad forward of
    the ablated copies; ``reference`` is ``T(x)`` ``(B,)`` from the forward that also gave the prediction.

    Written by hand rather than with captum's ``FeatureAblation`` (which it equals: tests/test_captum_equivalence.py):
    captum runs its own unperturbed forward, so the prediction's forward could not be shared, and the
    channels that a baseline leaves unchanged would still be evaluated.
    """
    copies, channels = ablated_copies(x, baselines)
    delta = torch.zeros(x.shape[:2], dtype=reference.dtype, device=x.device)
    if channels:
        ablated = forward(copies).view(len(channels), len(x)).to(reference.dtype)
        delta[:, channels] = (reference.unsqueeze(0) - ablated).T
    return delta


@dataclass(frozen=True)
class Method:
    """An attribution method and what it costs.

    Attributes:
        name: registry key.
        description: one line for the UI and ``--help``.
        defaults: parameters and their defaults (recorded in outputs and cache keys).
        from_gradient: for gradient methods, ``(x, ∂T/∂x) -> A`` (one forward + backward per batch).
        attribute: for the other methods, ``Batch -> A`` or ``(A, info)`` with per-sample diagnostics ``info``
            (name -> ``(B,)``), run after a no-grad forward fixed the selection.
        signed: attributions carry a sign (shown on a diverging colour scale centred at 0).
        baselines: for ablation methods, ``(x, params, valid) -> (B, C, H, W)``: what each channel is replaced by
            (``valid``: the slice's own pixels, see :func:`valid_region`);
            the attribution of channel ``c`` is ``T(x) − T(x with c replaced)`` spread evenly over the slice's
            pixels, so its mass is ``|ΔT|``.
        cost: forward(+backward) passes per batch, for the run-time estimate (:mod:`explorer.attribution.limits`);
            None: one per channel plus the unperturbed one.
        copies: copies of a batch evaluated at once, for the memory estimate; None: one per channel.
    """

    name: str
    description: str
    defaults: dict[str, Any]
    from_gradient: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    attribute: Callable[[Batch], torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = field(
        default=None, repr=False
    )
    signed: bool = False
    baselines: Callable[[torch.Tensor, dict[str, Any], torch.Tensor], torch.Tensor] | None = field(
        default=None, repr=False
    )
    cost: int | None = 1
    copies: int | None = 1

    def passes_for(self, channels: int) -> int:
        """Forward(+backward) passes per batch of ``channels``-channel windows (run-time estimate)."""
        return channels + 1 if self.cost is None else self.cost

    def copies_for(self, channels: int) -> int:
        """Copies of a batch of ``channels``-channel windows evaluated at once (memory estimate)."""
        return channels if self.copies is None else self.copies


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("saliency", "|∂target/∂input| (Simonyan et al. 2014)", {}, from_gradient=lambda x, g: g.abs()),
        Method("gradient", "signed ∂target/∂input", {}, from_gradient=lambda x, g: g, signed=True),
        Method(
            "input_x_gradient", "input × ∂target/∂input", {}, from_gradient=lambda x, g: x.detach() * g, signed=True
        ),
        Method(
            "integrated_gradients",
            "path integral of gradients from a constant baseline (captum; the convergence delta is recorded)",
            {"baseline": 0.0, "steps": 50},
            attribute=_integrated_gradients,
            signed=True,
            cost=16,
            copies=4,
        ),  # captum's internal batch is 4 copies (see explain_batch)
        Method(
            "smoothgrad",
            "mean |gradient| over noisy copies of the input (noise σ = sigma × the window's "
            "intensity range, seeded per slice)",
            {"samples": 8, "sigma": 0.15, "seed": 0},
            attribute=_smoothgrad,
            cost=8,
        ),
        Method(
            "occlusion",
            "channel ablation: |Δtarget| when one channel is replaced; replace=" + "|".join(OCCLUSION_BASELINES),
            {"baseline": 0.0, "replace": "mean", "blur_sigma": 2.0},
            baselines=lambda x, p, valid: occlusion_baselines(
                x, str(p["replace"]), float(p["baseline"]), float(p["blur_sigma"]), valid
            ),
            cost=None,
            copies=None,
        ),
    )
}


#: The default method: the one ``explorer validate`` shows recovers planted dependencies for every
#: initialisation strategy (docs/validation.md), with its default ``replace="mean"``.
DEFAULT_METHOD = choices.DEFAULT_METHOD


@torch.no_grad()
def target_selection(
    model: nn.Module, x: torch.Tensor, target: str, truth: torch.Tensor | None = None, padding: Padding | None = None
) -> torch.Tensor:
    """The pixels ``(B, H, W)`` float that make up ``target`` for the windows ``x``, from a no-grad forward,
    restricted to the unpadded slice (``padding`` of the windows; None = no padding).

    Raises:
        InputError: an unknown target, target ``mask`` without a mask, a model with several logits.
    """
    return get_target(target).select(foreground_logit(model(x), x) > 0, truth) * valid_region(x, padding)


@dataclass(frozen=True, eq=False)
class Explanation:
    """What :func:`explain_batch` returns for a batch of ``B`` windows (tensors on the model's device).

    Attributes:
        attr: attribution ``(B, C, H, W)`` (padded like the input; all zero for skipped slices).
        logits: foreground logits ``(B, H, W)`` of the unperturbed forward pass.
        selection: the target's pixels ``(B, H, W)`` float.
        keep: ``(B,)`` bool, slices whose target is not empty (the others are skipped).
        info: per-sample method diagnostics, name -> ``(B,)`` (NaN for skipped slices): integrated
            gradients' ``convergence_delta`` (|Σ A − (T(x) − T(baseline))|), SmoothGrad's ``noise_sigma``.
    """

    attr: torch.Tensor
    logits: torch.Tensor
    selection: torch.Tensor
    keep: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)


def explain_batch(
    model: nn.Module,
    x: torch.Tensor,
    spec: RunSpec,
    *,
    slices: tuple[int, ...],
    padding: Padding | None,
    truth: torch.Tensor | None = None,
    selection: torch.Tensor | None = None,
    reversed_windows: bool = False,
) -> Explanation:
    """Attribute each window's target to its input channels: the one dispatch every caller uses.

    Gradient methods take one forward and one backward for the whole batch, and that forward also gives the
    prediction; the others run a no-grad forward to fix the target's pixels, then the method on the slices
    whose target is not empty.

    Args:
        model: eval-mode single-logit model on ``x``'s device.
        x: windows ``(B, C, H, W)``.
        spec: the method, its resolved parameters and the target (validated when the spec was built).
        slices: stack index of each window (seeds per-slice noise).
        padding: how the windows were padded (:attr:`explorer.attribution.windows.WindowBatch.padding`); the target
            never includes padded pixels, and occlusion spreads ``ΔT`` over the unpadded ones.
        truth: ground-truth mask ``(B, H, W)`` bool for target ``mask``.
        selection: the target's pixels fixed by the caller (e.g. from another model's prediction); by default
            they come from this model's own prediction.
        reversed_windows: ``x`` holds channel-reversed windows (methods that draw noise reverse it too).

    Raises:
        InputError: target ``mask`` without a mask, a model with several logits.
    """
    method, tgt, params = METHODS[spec.method], TARGETS[spec.target], dict(spec.params)
    valid = valid_region(x, padding)
    if method.from_gradient is not None:
        x = x.detach().requires_grad_(True)
        fg = foreground_logit(model(x), x)
        logits = fg.detach()
        chosen = (tgt.select(logits > 0, truth) if selection is None else selection) * valid
        (grad,) = torch.autograd.grad(((fg.abs() if tgt.absolute else fg) * chosen).sum(), x)
        attr = method.from_gradient(x.detach(), grad).detach()
        return Explanation(attr, logits, chosen, chosen.flatten(1).sum(1) > 0)
    with torch.no_grad():
        logits = foreground_logit(model(x), x)
    chosen = (tgt.select(logits > 0, truth) if selection is None else selection) * valid
    keep = chosen.flatten(1).sum(1) > 0
    attr = torch.zeros_like(x)
    info: dict[str, torch.Tensor] = {}
    if method.baselines is not None and bool(keep.any()):
        rows = keep.nonzero()[:, 0]
        forward = target_forward(model, tgt.absolute)
        with torch.no_grad():
            reference = ((logits.abs() if tgt.absolute else logits) * chosen).flatten(1).sum(1)[rows]
            repeated = chosen[rows].repeat(x.shape[1], 1, 1)  # enough rows for every ablated copy
            kept = x[rows].detach()
            delta = occlusion_deltas(
                lambda c: forward(c, repeated[: len(c)]), kept, reference, method.baselines(kept, params, valid)
            )
        attr[rows] = (delta.to(x.dtype) / valid.sum())[:, :, None, None] * valid
    elif bool(keep.any()):
        rows = keep.nonzero()[:, 0]
        kept = tuple(int(slices[i]) for i in rows.tolist())
        inside = x[rows].detach().flatten(2)[..., valid.flatten() > 0]  # (b, C, unpadded pixels)
        span = (inside.amax(dim=(1, 2)) - inside.amin(dim=(1, 2))).clamp_min(1e-12)
        out = method.attribute(
            Batch(
                model,
                x[rows].detach(),
                chosen[rows],
                tgt.absolute,
                kept,
                int(valid.sum()),
                params,
                span,
                reversed_windows,
            )
        )
        found, extra = out if isinstance(out, tuple) else (out, {})
        attr[rows] = found.detach()
        for name, values in extra.items():
            info[name] = torch.full((len(x),), float("nan"), device=x.device)
            info[name][rows] = values.detach().to(info[name].dtype)
    return Explanation(attr, logits, chosen, keep, info)


def get_method(name: str) -> Method:
    """Look a method up; an unknown name lists the valid ones."""
    if name not in METHODS:
        raise unknown_name("attribution method", name, METHODS)
    return METHODS[name]


def get_target(name: str) -> Target:
    """Look a target up; an unknown name lists the valid ones."""
    if name not in TARGETS:
        raise unknown_name("attribution target", name, TARGETS)
    return TARGETS[name]


def require_truth(target: str, has_truth: bool) -> None:
    """Refuse ``target`` when it needs a ground-truth mask and there is none (the one place this is said).

    Raises:
        InputError: an unknown target, or target ``mask`` without a mask.
    """
    if get_target(target).uses_mask and not has_truth:
        raise InputError("--target", f"target {target!r} needs a ground-truth mask", "--mask MASK, or another target")


def resolve_params(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The method's defaults updated by ``params``, with types checked.

    Raises:
        InputError: an unknown method, an unknown parameter or a value of the wrong type or range.
    """
    resolved = merge_params(get_method(method).defaults, params, owner=f"method {method!r}", source="params")
    for key in ("steps", "samples"):
        if key in resolved and resolved[key] < 1:
            raise InputError("params", f"{key}={resolved[key]!r} for method {method!r}", "a positive integer")
    if "replace" in resolved and resolved["replace"] not in OCCLUSION_BASELINES:
        raise unknown_name("occlusion baseline", resolved["replace"], OCCLUSION_BASELINES)
    if "blur_sigma" in resolved and not resolved["blur_sigma"] > 0:
        raise InputError("params", f"blur_sigma={resolved['blur_sigma']!r}", "a positive number of pixels")
    return resolved
