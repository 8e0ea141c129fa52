"""Speed of the default method (occlusion, each channel replaced by its mean, with the reversed windows) on the
sample and on the 1 mm MNI152 T1 template. A script, not a test: it prints ratios measured in one run.

Rows, per volume and one shipped checkpoint (float32):
- naive: captum ``FeatureAblation`` one slice at a time, as a notebook would: a forward for the target's
  pixels, then the ablation (its own unperturbed forward, one forward per channel), on the window and on its
  reversed copy; every 3rd slice;
- ceiling: the raw batched no-grad forward of the same prepared model (BN folded, channels-last) over the
  forwards the method needs per slice: the window and its ablated copies, twice (as it is and reversed);
- engine: the attribution pass (:func:`explorer.attribution.engine.attribute_stack`, both directions), and ``analyze()``
  with its defaults end to end (cache off: statistics, diagnostics included).
Rows are interleaved over ``--repeats`` rounds and the best of each is kept, so a busy machine slows all alike.

Usage: ``.venv/bin/python bench/bench_occlusion.py [--repeats 2] [--skip-1mm]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_speed import timed  # noqa: E402  (this folder is on sys.path when run as a script)
from captum.attr import FeatureAblation  # noqa: E402

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
from explorer.analysis import analyze  # noqa: E402
from explorer.attribution.engine import Pass, attribute_stack  # noqa: E402
from explorer.attribution.fastpath import START_BATCH, prepare_model  # noqa: E402
from explorer.attribution.limits import device_batch_size  # noqa: E402
from explorer.attribution.methods import occlusion_baselines, valid_region  # noqa: E402
from explorer.attribution.windows import (
    SliceStack,  # noqa: E402
    iter_windows,  # noqa: E402
)
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.device import describe_device, select_device  # noqa: E402
from explorer.models.checkpoints import list_zoo, load_checkpoint  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402
from explorer.study import Study  # noqa: E402


def bench_volume(path: Path, checkpoint: Path, repeats: int, device: torch.device) -> dict[str, float]:
    """Print one volume's table and return its rates (slices/s) by row name."""
    ckpt = load_checkpoint(checkpoint)
    study = Study.load(path)
    stack = study.slices(ckpt.meta.axis, ckpt.meta.normalisation)
    n, offsets = stack.shape[0], tuple(ckpt.meta.offsets)
    channels = len(offsets)
    model = ckpt.build_model(device).eval()
    fast = prepare_model(model, device)
    size = device_batch_size(ckpt, "occlusion", stack.shape[1:], device) or START_BATCH[device.type]
    batches = [
        b.x.to(device).contiguous(memory_format=torch.channels_last)
        for b in iter_windows(stack, offsets, batch_size=size)
    ]
    naive_slices = list(range(0, n, 3))
    singles = [
        (b.x.to(device), valid_region(b.x, b.padding).to(device))
        for b in iter_windows(stack, offsets, batch_size=1, slices=naive_slices)
    ]
    mask = torch.arange(channels, device=device).view(1, -1, 1, 1)

    def naive() -> None:
        def target(x: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
            return (model(x)[:, 0] * selection).flatten(1).sum(1)

        ablation = FeatureAblation(target)
        for x, valid in singles:
            for window in (x, x.flip(1)):
                with torch.no_grad():
                    selection = (model(window)[:, 0] > 0).float() * valid
                ablation.attribute(
                    window,
                    baselines=occlusion_baselines(window, "mean", 0.0, 2.0, valid),
                    additional_forward_args=(selection,),
                    feature_mask=mask,
                )

    def ceiling() -> None:  # (1 + C) forwards of each window, as it is and reversed, in batches of (1 + C)·size
        with torch.no_grad():
            for x in batches:
                for window in (x, x.flip(1)):
                    fast(window)
                    fast(window.repeat(channels, 1, 1, 1))

    def engine() -> None:
        for reverse in (False, True):
            attribute_stack(
                fast,
                SliceStack(stack, offsets),
                RunSpec(method="occlusion"),
                Pass(device=device, batch_size=size, reverse=reverse),
            )

    rows: dict[str, tuple[Callable[[], object], int]] = {
        "naive: captum FeatureAblation, one slice at a time, window and reversed window": (naive, len(naive_slices)),
        f"ceiling: raw no-grad forwards the method needs, batch {size} windows": (ceiling, n),
        "attribution pass (engine, both directions)": (engine, n),
        "analyze() default, end to end": (lambda: analyze(study, [ckpt], RunSpec(device=device.type), cache=False), n),
    }
    for fn, _ in rows.values():  # warm-up (also fills the per-process prepared-model cache)
        fn()
    best = {name: float("inf") for name in rows}
    for _ in range(repeats):
        for name, (fn, _) in rows.items():
            best[name] = min(best[name], timed(fn))
    rates = {name: rows[name][1] / t for name, t in best.items()}
    names = list(rows)
    print(
        f"\n### {path.name}: {n} slices of {stack.shape[1]}×{stack.shape[2]}, {ckpt.name}, "
        f"{describe_device(device)}, torch {torch.__version__}, float32, best of {repeats}\n"
    )
    print("| path | slices/s | × naive |\n|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / rates[names[0]]:.2f} |")
    print(f"| attribution pass ÷ ceiling | | {rates[names[2]] / rates[names[1]]:.2f} |")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped imagenet checkpoint")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-1mm", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else next(p for p in list_zoo() if load_checkpoint(p).meta.strategy == "imagenet")
    )
    device = select_device(args.device)
    bench_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz", checkpoint, args.repeats, device)
    if not args.skip_1mm:
        from nilearn.datasets import load_mni152_template

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mni152_t1_1mm.nii.gz"
            load_mni152_template(resolution=1).to_filename(path)
            bench_volume(path, checkpoint, args.repeats, device)


if __name__ == "__main__":
    main()
