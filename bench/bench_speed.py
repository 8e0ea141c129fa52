"""Speed on the sample and on a real-sized volume (method: docs/performance.md). A script, not a test.

For each volume (the 2 mm sample; the 1 mm MNI152 T1 template from nilearn, 189 axial slices of 197×233) and
one shipped checkpoint it prints, measured in one run:
- naive: captum ``Saliency`` one slice at a time, ONE forward+backward per slice (the target — the sum of the
  logits over the predicted pixels — is computed inside that same forward), on every 3rd slice;
- ceiling: the best raw batched forward+backward of the prepared model (BN folded, channels-last, batch 8),
  in float32 and in bfloat16 autocast;
- analyze(): the default end to end (cache off), and its attribution pass alone;
- CLI first run (empty cache; start-up, analysis and every export included), and the same command again
  (answered from the run record);
- peak memory (max RSS) of ``explorer analyze`` on the volume with every shipped checkpoint (``--memory``).
In-process rows are interleaved over ``--repeats`` rounds and the best of each is kept, so a busy machine
slows all rows alike. Ratios, never timed assertions.

Usage: ``.venv/bin/python bench/bench_speed.py [--repeats 3] [--memory] [--skip-1mm] [--skip-sample]
[--precisions float32 bfloat16]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from captum.attr import Saliency  # noqa: E402

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
from explorer.analysis import analyze  # noqa: E402
from explorer.attribution.engine import Pass, attribute_stack  # noqa: E402
from explorer.attribution.fastpath import START_BATCH, prepare_model  # noqa: E402
from explorer.attribution.limits import device_batch_size  # noqa: E402
from explorer.attribution.windows import SliceStack, iter_windows  # noqa: E402
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.device import autocast, describe_device, select_device  # noqa: E402
from explorer.models.checkpoints import list_zoo, load_checkpoint  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402
from explorer.study import Study  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def cli(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and the child's peak RSS (MB) of one ``explorer`` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "explorer.cli", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    return wall, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) // 1024


def bench_volume(
    path: Path,
    checkpoint: Path,
    repeats: int,
    memory: bool,
    device: torch.device,
    precisions: tuple[str, ...] = ("float32", "bfloat16"),
    run_cli: bool = True,
) -> dict[str, float]:
    """Print one volume's table (see the module docstring) and return its rates (slices/s) by row name.

    ``precisions``: the ceiling and attribution-pass rows to measure; ``run_cli``: also the CLI rows."""
    ckpt = load_checkpoint(checkpoint)
    study = Study.load(path)
    stack = study.slices(ckpt.meta.axis, ckpt.meta.normalisation)
    n, offsets = stack.shape[0], tuple(ckpt.meta.offsets)
    model = ckpt.build_model(device).eval()
    fast = prepare_model(model, device)
    size = device_batch_size(ckpt, "saliency", stack.shape[1:], device) or START_BATCH[device.type]
    batches = [
        b.x.to(device).contiguous(memory_format=torch.channels_last)
        for b in iter_windows(stack, offsets, batch_size=size)
    ]
    naive_slices = list(range(0, n, 3))
    singles = [b.x.to(device) for b in iter_windows(stack, offsets, batch_size=1, slices=naive_slices)]

    def naive() -> None:  # one forward+backward per slice: the selection comes from that same forward
        def target(x: torch.Tensor) -> torch.Tensor:
            fg = model(x)[:, 0]
            return (fg * (fg.detach() > 0)).flatten(1).sum(1)

        saliency = Saliency(target)
        for x in singles:
            saliency.attribute(x)

    def ceiling(precision: str) -> Callable[[], None]:
        def run() -> None:
            for x in batches:
                x = x.clone().requires_grad_(True)
                with autocast(device, precision):
                    out = fast(x).sum()
                torch.autograd.grad(out, x)

        return run

    def engine(precision: str) -> Callable[[], None]:
        spec = RunSpec(method="saliency", precision=precision)
        return lambda: attribute_stack(fast, SliceStack(stack, offsets), spec, Pass(device=device, batch_size=size))

    rows: dict[str, tuple[Callable[[], object], int]] = {
        "naive: captum Saliency, one slice at a time (1 fwd+bwd each)": (naive, len(naive_slices))
    }
    for precision in precisions:
        rows[f"ceiling: raw fwd+bwd, batch {size}, {precision}"] = (ceiling(precision), n)
    for precision in precisions:
        rows[f"attribution pass (engine, {precision})"] = (engine(precision), n)
    rows["analyze() default (z-flip pass on every 4th slice)"] = (
        lambda: analyze(study, [ckpt], RunSpec(device=device.type), cache=False),
        n,
    )
    rows["analyze() without the z-flip pass"] = (
        lambda: analyze(study, [ckpt], RunSpec(zflip=False, device=device.type), cache=False),
        n,
    )
    for fn, _ in rows.values():  # warm-up (also fills the per-process prepared-model cache)
        fn()
    best = {name: float("inf") for name in rows}
    for _ in range(repeats):
        for name, (fn, _) in rows.items():
            best[name] = min(best[name], timed(fn))
    rates = {name: rows[name][1] / t for name, t in best.items()}

    cached = peak = None
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "EXPLORER_CACHE_DIR": str(Path(tmp) / "cache")}
        command = [
            "analyze",
            str(path),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(Path(tmp) / "out"),
            "--device",
            device.type,
        ]
        if run_cli:
            first, _ = cli(command, env)
            cached, _ = cli(command, env)
            rates["CLI first run, end to end (start-up, every export)"] = n / first
        if memory:
            zoo = [a for c in list_zoo() for a in ("--checkpoint", str(c))]
            _, peak = cli(
                [
                    "analyze",
                    str(path),
                    *zoo,
                    "--out",
                    str(Path(tmp) / "all"),
                    "--formats",
                    "none",
                    "--device",
                    device.type,
                ],
                env,
            )

    naive_rate = rates[next(iter(rows))]
    print(
        f"\n### {path.name}: {n} slices of {stack.shape[1]}×{stack.shape[2]}, {ckpt.name}, "
        f"{describe_device(device)}, torch {torch.__version__}, best of {repeats}\n"
    )
    print("| path | slices/s | × naive |\n|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / naive_rate:.2f} |")
    for precision in precisions:
        ceiling_rate = rates[f"ceiling: raw fwd+bwd, batch {size}, {precision}"]
        ratio = rates[f"attribution pass (engine, {precision})"] / ceiling_rate
        print(f"| attribution pass ÷ {precision} ceiling | | {ratio:.2f} |")
    if cached is not None:
        print(f"| CLI re-run answered from the run record | {cached:.2f} s wall | |")
    if peak is not None:
        print(f"| peak memory, explorer analyze with all {len(list_zoo())} shipped checkpoints | {peak} MB | |")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped imagenet checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory with every checkpoint")
    parser.add_argument("--skip-1mm", action="store_true")
    parser.add_argument("--skip-sample", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float32", "bfloat16"],
        help="ceiling and attribution-pass rows (bfloat16 is emulated, very slow, without AVX512-BF16)",
    )
    args = parser.parse_args()
    checkpoint = (
        Path(args.checkpoint)
        if args.checkpoint
        else next(p for p in list_zoo() if load_checkpoint(p).meta.strategy == "imagenet")
    )
    device = select_device(args.device)
    precisions = tuple(args.precisions)
    if not args.skip_sample:
        bench_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz", checkpoint, args.repeats, args.memory, device, precisions)
    if not args.skip_1mm:
        from nilearn.datasets import load_mni152_template

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mni152_t1_1mm.nii.gz"
            load_mni152_template(resolution=1).to_filename(path)
            bench_volume(path, checkpoint, args.repeats, args.memory, device, precisions)


if __name__ == "__main__":
    main()
