"""Benchmark of the attribution engine (method: docs/performance.md).
A script, not a test: it prints one table.

Rows (slices per second on the sample volume, every slice, saliency w.r.t. the 2D+ input):
- ceiling: the best raw batched forward+backward of the same model (BN folded, channels-last, batch 8);
- naive: captum ``Saliency`` called one slice at a time on the checkpoint's model, as a notebook would
  (target ``predicted``, so a no-grad forward first finds the predicted pixels), on every 4th slice;
- engine: :func:`explorer.analysis.analyze` end to end (load, normalise, attribute, statistics), cache off,
  without and with the z-flip pass (the default; it attributes every slice twice);
- ablations of the engine's attribution pass: without BN folding, without channels-last, batch size 1.
Each row is the best of ``--repeats`` runs, interleaved, so a busy machine slows all rows alike.

Usage: ``.venv/bin/python bench/bench_attribution.py [--checkpoint models/X.safetensors] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from captum.attr import Saliency  # noqa: E402

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
from explorer.analysis import analyze  # noqa: E402
from explorer.checkpoints import list_zoo, load_checkpoint  # noqa: E402
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.device import describe_device, select_device  # noqa: E402
from explorer.engine import attribute_stack  # noqa: E402
from explorer.fastpath import prepare_model  # noqa: E402
from explorer.normalise import normalise  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402
from explorer.volume import load_volume  # noqa: E402
from explorer.windows import iter_windows  # noqa: E402


def best_rate(fn: Callable[[], None], slices: int, repeats: int) -> float:
    """Slices per second of the fastest of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return slices / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the first shipped checkpoint in models/")
    parser.add_argument("--volume", default=str(SAMPLE_DIR / "mni152_t1_2mm.nii.gz"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    zoo = list_zoo()
    source = args.checkpoint or (zoo[0] if zoo else None)
    if source is None:
        raise SystemExit("no checkpoint: pass --checkpoint or ship one in models/")
    ckpt = load_checkpoint(source)
    device = select_device(args.device)
    vol = load_volume(args.volume)
    stack = vol.stack(ckpt.meta.axis, normalise(vol.data, ckpt.meta.normalisation))
    n = stack.shape[0]
    offsets = tuple(ckpt.meta.offsets)
    model = ckpt.build_model(device)
    fast = prepare_model(model, device)
    batches = [b.x.to(device).contiguous(memory_format=torch.channels_last)
               for b in iter_windows(stack, offsets, batch_size=8)]
    naive_slices = list(range(0, n, 4))  # one slice at a time has no batch effects: a quarter of them suffices
    singles = [b.x.to(device) for b in iter_windows(stack, offsets, batch_size=1, slices=naive_slices)]

    def ceiling() -> None:
        for x in batches:
            x = x.clone().requires_grad_(True)
            torch.autograd.grad(fast(x).sum(), x)

    def naive() -> None:
        saliency = Saliency(lambda x, sel: (model(x)[:, 0] * sel).flatten(1).sum(1))
        for x in singles:
            with torch.no_grad():
                sel = (model(x)[:, 0] > 0).float()
            saliency.attribute(x, additional_forward_args=(sel,))

    def engine(zflip: bool) -> Callable[[], None]:
        return lambda: analyze(vol, [ckpt], RunSpec(device=args.device, zflip=zflip), cache=False)

    def ablation(**options: object) -> Callable[[], None]:
        batch = int(options.pop("batch_size", 8))
        prepared = prepare_model(model, device, **options)  # type: ignore[arg-type]
        return lambda: attribute_stack(prepared, stack, offsets, device=device, batch_size=batch)

    rows = {
        "ceiling: raw batched forward+backward": ceiling,
        "naive: captum Saliency, one slice at a time": naive,
        "engine: analyze(), no z-flip pass": engine(False),
        "engine: analyze(), default (with z-flip pass)": engine(True),
        "attribution pass: BN folded + channels-last, batch 8": ablation(),
        "attribution pass: no BN folding": ablation(fold_bn=False),
        "attribution pass: no channels-last": ablation(channels_last=False),
        "attribution pass: batch 1": ablation(batch_size=1),
    }
    for fn in rows.values():  # warm-up
        fn()
    rates = {name: 0.0 for name in rows}
    for _ in range(args.repeats):  # interleaved: each round runs every row once
        for name, fn in rows.items():
            count = len(naive_slices) if fn is naive else n
            rates[name] = max(rates[name], best_rate(fn, count, 1))
    naive_rate = rates["naive: captum Saliency, one slice at a time"]
    ceiling_rate = rates["ceiling: raw batched forward+backward"]
    print(f"checkpoint {ckpt.name} ({ckpt.meta.arch}/{ckpt.meta.encoder}), volume {vol.source} "
          f"{stack.shape[1]}x{stack.shape[2]}, {n} slices, {describe_device(device)}, "
          f"torch {torch.__version__}, best of {args.repeats}\n")
    print("| path | slices/s | × naive | × ceiling |\n|---|---:|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / naive_rate:.2f} | {rate / ceiling_rate:.2f} |")


if __name__ == "__main__":
    main()
