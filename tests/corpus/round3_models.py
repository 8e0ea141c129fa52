"""Hostile checkpoints of the third hardening round (issue 20, items 4 and 11), merged into the corpus of
``make_corpus.py``.

Item 4: metadata keys that smp would hand to ``timm.create_model`` (``checkpoint_path`` opens and loads a local
file, ``pretrained_cfg``/``pretrained_cfg_overlay`` name files and URLs), in explorer's own metadata and in an
smp ``config.json``; each is refused by name, with the same message whether the path it names exists or not.
Item 11: an FPN whose ``upsampling`` makes its logits larger than its input (4096 asked a real probe for 17 GB)
and a classification head that turns the output into a tuple, refused on the meta device before any forward.

Each builder takes the corpus context (``c.state``, ``c.meta``, ``c.checkpoint``) and returns the file's bytes;
:data:`ROUND3_MODEL_CASES` has the corpus table's layout: name -> (role, builder, message regex, environment).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache

import torch
from safetensors.torch import save

from explorer.models.build import build_model

try:
    from corpus.writers import zip_bytes
except ModuleNotFoundError:  # run as a script (python tests/corpus/make_corpus.py): this folder is on sys.path
    from writers import zip_bytes

#: A timm encoder: smp passes unknown architecture arguments on to ``timm.create_model`` for these.
TIMM = "tu-resnet10t"
#: A path that exists on every POSIX machine, and one that does not.
PRESENT, ABSENT = "/etc/passwd", "/nonexistent/explorer-corpus/weights.pth"
#: A small FPN (GroupNorm needs multiples of 32 in its segmentation blocks).
FPN_KWARGS = {"decoder_pyramid_channels": 16, "decoder_segmentation_channels": 32}


def _timm_meta(c, **kwargs) -> bytes:
    """The corpus checkpoint, its metadata naming a timm encoder and extra architecture arguments."""
    return c.checkpoint(encoder=TIMM, arch_kwargs={**c.meta["arch_kwargs"], **kwargs})


def _smp_zip(c, **config) -> bytes:
    """An smp ``save_pretrained`` folder as a zip: a timm encoder and ``config`` added to its ``config.json``."""
    base = {
        "_model_class": "Unet",
        "encoder_name": TIMM,
        "encoder_weights": None,
        "in_channels": 3,
        "classes": 1,
        **c.meta["arch_kwargs"],
    }
    return zip_bytes(
        {"ckpt/config.json": json.dumps({**base, **config}).encode(), "ckpt/model.safetensors": save(c.state)}
    )


@cache
def _state(arch: str, kwargs_json: str) -> dict[str, torch.Tensor]:
    """Half-precision weights of a small randomly initialised model (so that only the metadata is wrong)."""
    torch.manual_seed(0)
    model = build_model(arch=arch, **json.loads(kwargs_json))
    return {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}


def _with_kwargs(c, arch: str, weights: dict, **extra) -> bytes:
    """A checkpoint of ``arch`` whose weights are built with ``weights``, its metadata adding ``extra``."""
    return c.checkpoint(_state(arch, json.dumps(weights, sort_keys=True)), arch=arch, arch_kwargs={**weights, **extra})


def _fpn(c, upsampling: int) -> bytes:
    return _with_kwargs(c, "FPN", FPN_KWARGS, upsampling=upsampling)


def _refused(key: str, where: str = "field 'arch_kwargs'") -> str:
    return rf"{where} sets '{key}', which is not an argument explorer passes to smp Unet; expected only: activation"


def _logits(side: int) -> str:
    return (
        rf"smp FPN maps a 128 × 128 input to shape \(1, 1, {side}, {side}\); expected one logits tensor of the "
        r"input's size \(1, 1, 128, 128\); for smp FPN that is upsampling 4"
    )


ROUND3_MODEL_CASES: dict[str, tuple[str, Callable, str | None, dict[str, str]]] = {
    "ckpt_timm_checkpoint_path.safetensors": (
        "checkpoint",
        lambda c: _timm_meta(c, checkpoint_path=PRESENT),
        _refused("checkpoint_path"),
        {},
    ),
    "ckpt_timm_checkpoint_path_absent.safetensors": (
        "checkpoint",
        lambda c: _timm_meta(c, checkpoint_path=ABSENT),
        _refused("checkpoint_path"),
        {},
    ),
    "ckpt_timm_pretrained_cfg.safetensors": (
        "checkpoint",
        lambda c: _timm_meta(c, pretrained_cfg={"file": PRESENT, "url": "https://example.org/w.pth"}),
        _refused("pretrained_cfg"),
        {},
    ),
    "ckpt_timm_pretrained_cfg_overlay.safetensors": (
        "checkpoint",
        lambda c: _timm_meta(c, pretrained_cfg_overlay={"file": PRESENT}),
        _refused("pretrained_cfg_overlay"),
        {},
    ),
    "ckpt_weights_path.safetensors": (
        "checkpoint",
        lambda c: c.checkpoint(arch_kwargs={**c.meta["arch_kwargs"], "weights": PRESENT}),
        _refused("weights"),
        {},
    ),
    "ckpt_timm_checkpoint_path.zip": (
        "checkpoint",
        lambda c: _smp_zip(c, checkpoint_path=PRESENT),
        _refused("checkpoint_path", "config.json"),
        {},
    ),
    "ckpt_timm_checkpoint_path_absent.zip": (
        "checkpoint",
        lambda c: _smp_zip(c, checkpoint_path=ABSENT),
        _refused("checkpoint_path", "config.json"),
        {},
    ),
    "ckpt_timm_pretrained_cfg_overlay.zip": (
        "checkpoint",
        lambda c: _smp_zip(c, pretrained_cfg_overlay={"file": PRESENT}),
        _refused("pretrained_cfg_overlay", "config.json"),
        {},
    ),
    "ckpt_fpn_upsampling_8.safetensors": ("checkpoint", lambda c: _fpn(c, 8), _logits(256), {}),
    "ckpt_fpn_upsampling_256.safetensors": ("checkpoint", lambda c: _fpn(c, 256), _logits(8192), {}),
    "ckpt_fpn_upsampling_4096.safetensors": ("checkpoint", lambda c: _fpn(c, 4096), _logits(131072), {}),
    "ckpt_aux_params_head.safetensors": (
        "checkpoint",
        lambda c: _with_kwargs(c, "Unet", {**c.meta["arch_kwargs"], "aux_params": {"classes": 2}}),
        r"smp Unet maps a 128 × 128 input to a tuple; expected one logits tensor",
        {},
    ),
}
