"""GPU speed and reduced-precision agreement (docs/performance.md, "GPU"). A script, not a test; needs CUDA.

For each volume (default: the 2 mm sample and the 1 mm MNI152 T1 from nilearn; ``--volume`` names others) and
the shipped imagenet checkpoint it prints the rows of ``bench_speed.py`` on the GPU (the naive loop, the raw
forward+backward ceiling and the engine's attribution pass in float32, bfloat16 and float16 autocast, and
``analyze()`` end to end; the batch is sized from free GPU memory), the same naive loop on this machine's CPU
for scale, and how far each reduced precision moves the mean shares and the asymmetry index from float32 (the
criterion for ``--precision auto`` to choose it is 1e-3). ``--profile``: also the cProfile of one default
``analyze()`` per volume (functions by own time; GPU work shows up where the host waits for it).

Usage: ``python bench/bench_gpu.py [--repeats 3] [--volume PATH ...] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_speed, beside this file
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, also when not pip-installed

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_speed import bench_volume, timed  # noqa: E402
from captum.attr import Saliency  # noqa: E402

from explorer.analysis import analyze  # noqa: E402
from explorer.attribution.windows import iter_windows  # noqa: E402
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.models.checkpoints import list_zoo, load_checkpoint  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402
from explorer.stats.scan import asymmetry_index, shares_from_masses  # noqa: E402
from explorer.study import Study  # noqa: E402

PRECISIONS = ("float32", "bfloat16", "float16")


def cpu_naive_rate(path: Path, checkpoint: Path) -> float:
    """Slices/s of the naive captum loop (every 3rd slice) on this machine's CPU, all its threads."""
    ckpt = load_checkpoint(checkpoint)
    stack = Study.load(path).slices(ckpt.meta.axis, ckpt.meta.normalisation)
    model = ckpt.build_model("cpu").eval()
    slices = list(range(0, stack.shape[0], 3))
    singles = [b.x for b in iter_windows(stack, ckpt.meta.offsets, batch_size=1, slices=slices)]

    def target(x: torch.Tensor) -> torch.Tensor:
        fg = model(x)[:, 0]
        return (fg * (fg.detach() > 0)).flatten(1).sum(1)

    saliency = Saliency(target)
    saliency.attribute(singles[0])  # warm-up
    return len(singles) / timed(lambda: [saliency.attribute(x) for x in singles])


def agreement(path: Path, checkpoint: Path, device: torch.device) -> dict[str, tuple[float, float]]:
    """Per reduced precision: (max |Δ mean share|, |Δ mean AI|) against float32, over slices kept by both."""
    ckpt, study = load_checkpoint(checkpoint), Study.load(path)
    found = {}
    for precision in PRECISIONS:
        spec = RunSpec(device=device.type, precision=precision, zflip=False)
        model = next(iter(analyze(study, [ckpt], spec, cache=False).models.values()))
        shares = shares_from_masses(model.masses)
        found[precision] = (shares, np.asarray(asymmetry_index(shares, model.offsets)))
    s32, ai32 = found["float32"]
    out = {}
    for precision in PRECISIONS[1:]:
        s, ai = found[precision]
        both = np.isfinite(s32).all(1) & np.isfinite(s).all(1)
        out[precision] = (
            float(np.abs(s32[both].mean(0) - s[both].mean(0)).max()),
            float(abs(np.nanmean(ai32[both]) - np.nanmean(ai[both]))),
        )
    return out


def profile(path: Path, checkpoint: Path, device: torch.device) -> None:
    """Print the 12 functions with the most own time in one default ``analyze()`` (after a warm-up run)."""
    ckpt, study = load_checkpoint(checkpoint), Study.load(path)
    analyze(study, [ckpt], RunSpec(device=device.type), cache=False)
    profiler = cProfile.Profile()
    profiler.runcall(lambda: analyze(study, [ckpt], RunSpec(device=device.type), cache=False))
    print(f"\nProfile of analyze() on {path.name}:\n```")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)
    print("```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volume", nargs="*", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="also profile one analyze() per volume")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py: no CUDA device here; bench/bench_speed.py measures the CPU")
    device = torch.device("cuda")
    checkpoint = next(p for p in list_zoo() if load_checkpoint(p).meta.strategy == "imagenet")
    with tempfile.TemporaryDirectory() as tmp:
        volumes = args.volume
        if volumes is None:
            from nilearn.datasets import load_mni152_template

            volumes = [SAMPLE_DIR / "mni152_t1_2mm.nii.gz", Path(tmp) / "mni152_t1_1mm.nii.gz"]
            load_mni152_template(resolution=1).to_filename(volumes[1])
        for path in volumes:
            rates = bench_volume(path, checkpoint, args.repeats, False, device, PRECISIONS, run_cli=False)
            naive_gpu = rates[next(iter(rates))]
            naive_cpu = cpu_naive_rate(path, checkpoint)
            print(
                f"| naive on this machine's CPU ({torch.get_num_threads()} threads) | {naive_cpu:.1f} | "
                f"{naive_cpu / naive_gpu:.2f} |"
            )
            for name, rate in rates.items():
                if name.startswith("analyze()"):
                    print(f"| {name} ÷ CPU naive | | {rate / naive_cpu:.1f} |")
            print("\n| precision | max Δ mean share | Δ mean AI | within 1e-3 |\n|---|---:|---:|---|")
            for precision, (share, ai) in agreement(path, checkpoint, device).items():
                print(f"| {precision} | {share:.1e} | {ai:.1e} | {'yes' if max(share, ai) < 1e-3 else 'no'} |")
            if args.profile:
                profile(path, checkpoint, device)


if __name__ == "__main__":
    main()
