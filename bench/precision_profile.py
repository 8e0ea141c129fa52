"""Where reduced precision's time goes on this CPU (method: docs/performance.md, "Seventh round").
A script, not a test: it prints one table.

The sample with the ImageNet checkpoint, saliency without the reversed windows (what ``tests/test_precision.py``
compares), once in float32 and once in bfloat16 autocast, on one thread, after a warm-up (the model's preparation):
each timed, then run again under ``torch.profiler`` (which slows it down). Printed: CPU seconds per precision
(unprofiled), their ratio, and, from the profile, the share of the time and the calls in PyTorch's slow convolution
(``aten::_slow_conv2d_*``). That path runs a grouped convolution one group at a time; it serves a dtype that oneDNN
does not take (bfloat16 on a CPU without native bfloat16).

Usage: ``.venv/bin/python bench/precision_profile.py``
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import explorer  # noqa: E402,F401  (before torchvision/timm/smp)
from explorer.analysis import analyze  # noqa: E402
from explorer.config import SAMPLE_DIR  # noqa: E402
from explorer.io.volume import load_volume  # noqa: E402
from explorer.models.checkpoints import list_zoo, load_checkpoint  # noqa: E402
from explorer.spec import RunSpec  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    volume = load_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")
    imagenet = next(c for c in map(load_checkpoint, list_zoo()) if c.meta.strategy == "imagenet")
    print(f"oneDNN takes bfloat16 here: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print("| precision | CPU s | × float32 | slow conv, share of the time | slow conv calls | convolutions |")
    print("|---|---:|---:|---:|---:|---:|")
    analyze(volume, [imagenet], RunSpec(method="saliency", device="cpu", zflip=False), cache=False)  # warm-up
    base = None
    for precision in ("float32", "bfloat16"):
        spec = RunSpec(method="saliency", device="cpu", precision=precision, zflip=False)
        start = time.process_time()
        analyze(volume, [imagenet], spec, cache=False)
        seconds = time.process_time() - start
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            analyze(volume, [imagenet], spec, cache=False)
        base = base or seconds
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        slow = [e for e in events if e.key.startswith("aten::_slow_conv2d")]
        convs = sum(e.count for e in events if e.key == "aten::_convolution")
        share = sum(e.self_cpu_time_total for e in slow) / total
        calls = sum(e.count for e in slow)
        print(f"| {precision} | {seconds:.1f} | {seconds / base:.1f} | {share:.0%} | {calls:,} | {convs:,} |")


if __name__ == "__main__":
    main()
