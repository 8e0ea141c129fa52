"""How much the default measure depends on the canvas a slice is padded to (docs/definitions.md, "Padding").

Analyses the sample with the shipped imagenet checkpoint on the default canvas (a multiple of 32: 96 × 96 for
77 × 94 slices, the canvas training used) and on a multiple of 64 (128 × 128), for the targets ``predicted`` and
``all``, and prints the channel asymmetry, AI and mean shares of each. A script, not a test.

Usage: ``.venv/bin/python bench/canvas_sensitivity.py [--method occlusion]``
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
import explorer.analysis as analysis  # noqa: E402
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.models.checkpoints import list_zoo  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=RunSpec.method)
    args = parser.parse_args()
    engine = analysis.attribute_stack
    checkpoint = next(p for p in list_zoo() if p.name.endswith("-imagenet-s0.safetensors"))
    for target in ("predicted", "all"):
        for multiple in (32, 64):
            analysis.attribute_stack = lambda m, d, s, run, *a, _m=multiple: engine(
                m, d, s, replace(run, multiple=_m), *a
            )
            result = analysis.analyze(
                SAMPLE_DIR / "mni152_t1_2mm.nii.gz",
                [checkpoint],
                RunSpec(method=args.method, target=target),
                cache=False,
            )
            entry = next(iter(result.summary["models"].values()))
            shares = ", ".join(f"{k}: {v:.3f}" for k, v in entry["mean_share"].items())
            print(
                f"{args.method} target {target}, multiple {multiple}: channel asymmetry "
                f"{entry['channel_asymmetry']['mean']:+.3f}, AI {entry['asymmetry_index']['mean']:+.3f}, "
                f"mean shares {shares}"
            )


if __name__ == "__main__":
    main()
