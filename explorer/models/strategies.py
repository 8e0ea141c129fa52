"""Initialisation strategies (a registry): how the first convolution's per-slice kernels start out.

Shapes: the published ImageNet first-conv weight is ``W`` ``(out, 3, kh, kw)`` with channels R, G, B; the
model's is ``(out, C, kh, kw)`` with channel ``i`` holding slice ``z + offsets[i]`` and ``C = len(offsets)``.

Mapping for any window width ``C`` (for ``C = 3`` the factor ``3 / C`` is 1 and the mapping is the identity):
- ``imagenet``: channel ``i`` <- ``W[:, i mod 3] * 3 / C`` (smp's ``patch_first_conv``: cycle RGB and rescale;
  the response to a grey image equals the RGB model's only when ``C`` is a multiple of 3);
- ``imagenet-uniform``: every channel <- ``mean(W over RGB) * 3 / C`` (same grey response for every ``C``);
- ``imagenet-symmetric``: the ``imagenet`` mapping, then the kernels of offsets ``-k`` and ``+k`` both set to
  their mean; the centre keeps its own kernel;
- ``imagenet-zflip``: the ``imagenet`` mapping, plus a training augmentation that reverses the window.
All other encoder weights are the published ones; decoder and head keep smp's initialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, unknown_name
from .build import first_conv, first_conv_shares
from .weights import load_encoder_weights, resolve_weights

__all__ = [
    "KernelMap",
    "PAPER",
    "cycle_rgb",
    "uniform",
    "symmetric",
    "InitReport",
    "Strategy",
    "STRATEGIES",
    "get_strategy",
]


KernelMap = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]
PAPER = "Molnar, Szabo, Horvath, arXiv 2505.14105 (uniform channel initialisation)"


def cycle_rgb(rgb: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """Channel ``i`` <- RGB kernel ``i mod 3``, scaled by ``3 / C`` (smp's mapping; identity for ``C = 3``)."""
    c = len(offsets)
    index = torch.arange(c) % rgb.shape[1]
    return rgb[:, index] * (rgb.shape[1] / c)


def uniform(rgb: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """Every channel <- the mean of the RGB kernels, scaled by ``3 / C``."""
    c = len(offsets)
    return rgb.mean(dim=1, keepdim=True).expand(-1, c, -1, -1) * (rgb.shape[1] / c)


def symmetric(rgb: torch.Tensor, offsets: Sequence[int]) -> torch.Tensor:
    """:func:`cycle_rgb`, then the kernels of ``-k`` and ``+k`` replaced by their mean; the centre unchanged."""
    out = cycle_rgb(rgb, offsets).clone()
    position = {int(o): i for i, o in enumerate(offsets)}
    for o, i in position.items():
        if o > 0 and -o in position:
            j = position[-o]
            mean = (out[:, i] + out[:, j]) / 2
            out[:, i], out[:, j] = mean, mean
    return out


@dataclass(frozen=True)
class InitReport:
    """What a strategy did: ``weights`` (source, file SHA-256, load report) and first-conv shares at init."""

    strategy: str
    weights: dict[str, Any] = field(default_factory=dict)
    first_conv_share: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (offsets as string keys)."""
        return {
            "strategy": self.strategy,
            "weights": self.weights,
            "first_conv_share": {str(k): v for k, v in self.first_conv_share.items()},
        }


@dataclass(frozen=True)
class Strategy:
    """A named initialisation.

    Attributes:
        name: registry key.
        definition: one line for the UI, ``--help`` and model cards.
        reference: where it comes from.
        kernel_map: RGB first-conv weight -> per-slice weight, or None for no pretrained weights.
        augment_zflip: training reverses the window order with probability 0.5 (label unchanged).
    """

    name: str
    definition: str
    reference: str
    kernel_map: KernelMap | None = None
    augment_zflip: bool = False

    @property
    def pretrained(self) -> bool:
        """Whether the encoder starts from ImageNet weights."""
        return self.kernel_map is not None

    def apply(
        self, model: torch.nn.Module, offsets: Sequence[int], *, encoder: str, weights: str | Path | None = None
    ) -> InitReport:
        """Initialise ``model`` (an smp model built by :func:`explorer.models.build.build_model`) in place.

        Args:
            model: the model; its first conv must have ``len(offsets)`` input channels.
            offsets: the window offsets.
            encoder: the smp encoder name (selects the ImageNet weights).
            weights: an explicit ImageNet weight file (default: :func:`explorer.models.weights.resolve_weights`).

        Returns:
            The report, with first-conv shares right after initialisation.

        Raises:
            InputError: no weights found, a weight file that does not fit the encoder, or offsets that do not
                match the model's input channels.
        """
        conv = first_conv(model)
        if conv.in_channels != len(offsets):
            raise InputError(
                "offsets",
                f"{len(offsets)} offsets for a first convolution with {conv.in_channels} input channels",
                "one offset per input channel",
            )
        if self.kernel_map is None:
            return InitReport(self.name, {"source": "none (random)"}, first_conv_shares(conv, offsets))
        resolved = resolve_weights(encoder, weights)
        conv_key = next(k for k, v in model.encoder.state_dict(keep_vars=True).items() if v is conv.weight)
        report, state = load_encoder_weights(model.encoder, resolved, skip=(conv_key,))
        rgb = state[conv_key].float()
        with torch.no_grad():
            conv.weight.copy_(self.kernel_map(rgb, offsets))
        info = {
            "source": resolved.origin,
            "file": resolved.path.name,
            "sha256": resolved.sha256,
            "loaded_keys": report.loaded,
            "missing_keys": list(report.missing),
            "unexpected_keys": list(report.unexpected),
            "dropped_keys": list(report.dropped),
            "first_conv_key": conv_key,
            "published_first_conv_share": dict(zip("RGB", first_conv_shares(rgb, (0, 1, 2)).values(), strict=True)),
        }
        if len(offsets) == 3:
            info["first_conv_max_abs_diff_to_published"] = float((conv.weight.detach() - rgb).abs().max())
        return InitReport(self.name, info, first_conv_shares(conv, offsets))


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "random",
            "smp/timm default initialisation, no pretrained weights",
            "segmentation_models_pytorch defaults (encoder_weights=None)",
        ),
        Strategy(
            "imagenet",
            "pretrained ImageNet encoder, first conv as published (channel i <- RGB i mod 3, x 3/C for C != 3)",
            "torchvision/timm ImageNet weights; smp patch_first_conv for C != 3",
            cycle_rgb,
        ),
        Strategy(
            "imagenet-uniform",
            "ImageNet encoder, every input channel's first-conv kernel = mean over RGB (x 3/C)",
            PAPER,
            uniform,
        ),
        Strategy(
            "imagenet-symmetric",
            "ImageNet encoder, kernels of offsets -k and +k both set to their mean; the centre keeps its own",
            "this project (a symmetric variant of " + PAPER + ")",
            symmetric,
        ),
        Strategy(
            "imagenet-zflip",
            "imagenet weights, trained with a window reversal (swap -k and +k, p = 0.5, label unchanged)",
            "this project (symmetry taught by augmentation)",
            cycle_rgb,
            augment_zflip=True,
        ),
    )
}


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by name; an unknown name lists the valid ones."""
    if name not in STRATEGIES:
        raise unknown_name("strategy", name, STRATEGIES)
    return STRATEGIES[name]
