"""Channel asymmetry of the first-conv surgery under every attribution method (numbers in docs/debias.md).
A script, not a test: it prints one line per mode × method.

The ImageNet checkpoint of the zoo and its ``explorer debias`` surgery (symmetric, uniform) on eleven axial slices
of the sample (20, 24, …, 60): the windows and the reversed windows are attributed and split as in
``tests/test_split.py``; the line gives the largest |channel asymmetry| over those slices (the parent's beside the
symmetric child's, to show the check can fail).

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python bench/debias_every_method.py``
"""

from __future__ import annotations

import numpy as np
import torch

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.attribution.engine import Pass, attribute_stack
from explorer.attribution.fastpath import prepare_model
from explorer.attribution.methods import METHODS, OCCLUSION_BASELINES
from explorer.attribution.windows import SliceStack
from explorer.config import REPO_ROOT, SAMPLE_DIR
from explorer.debias import surgery
from explorer.io.normalise import channel_stats_for
from explorer.models.checkpoints import load_checkpoint
from explorer.spec import RunSpec
from explorer.stats.scan import split_asymmetry
from explorer.study import Study

CPU = torch.device("cpu")
SLICES = list(range(20, 61, 4))
CASES = (
    [(m, {}) for m in METHODS if m not in ("occlusion", "integrated_gradients", "smoothgrad")]
    + [("integrated_gradients", {"steps": 8}), ("smoothgrad", {"samples": 4})]
    + [("occlusion", {"replace": r}) for r in OCCLUSION_BASELINES]
)


def max_channel_asymmetry(
    model: torch.nn.Module, stack: np.ndarray, offsets: tuple[int, ...], method: str, params: dict, normalisation: str
) -> float:
    """Largest |channel asymmetry| of ``model`` over :data:`SLICES`."""
    data = SliceStack(stack, offsets, channel_stats=channel_stats_for(normalisation, len(offsets)))
    spec = RunSpec(method=method, params=params)
    plain = attribute_stack(model, data, spec, Pass(slices=SLICES))
    flipped = attribute_stack(model, data, spec, Pass(slices=SLICES, reverse=True))
    channel, _ = split_asymmetry(plain.masses, flipped.masses, offsets)
    return float(np.nanmax(np.abs(channel[SLICES])))


def main() -> None:
    parent = load_checkpoint(REPO_ROOT / "models" / "unet-mobilenet_v2-imagenet-s0.safetensors")
    meta = parent.meta
    stack = Study.load(SAMPLE_DIR / "mni152_t1_2mm.nii.gz").slices(meta.axis, meta.normalisation)
    models = {"parent": parent, **{mode: surgery(parent, mode) for mode in ("symmetric", "uniform")}}
    prepared = {k: prepare_model(c.build_model(CPU), CPU) for k, c in models.items()}
    print("| method | parent | surgery, symmetric | surgery, uniform |\n|---|---|---|---|")
    for method, params in CASES:
        values = [
            max_channel_asymmetry(m, stack, meta.offsets, method, params, meta.normalisation) for m in prepared.values()
        ]
        label = method + (f" ({params['replace']})" if "replace" in params else "")
        print(f"| {label} | " + " | ".join(f"{v:.1e}" for v in values) + " |", flush=True)


if __name__ == "__main__":
    main()
