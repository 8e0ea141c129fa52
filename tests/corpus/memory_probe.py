"""Peak memory of CLI runs, each in a forked child whose own peak ``os.wait4`` reports.

Usage: ``python tests/corpus/memory_probe.py CASES.json`` with ``{"cases": {name: {"argv": [...], "env": {...}}}}``;
prints ``{"baseline_kb": ..., "cases": {name: {"code": exit code, "peak_kb": peak resident set}}}``. The
package is imported once, before the forks, so every child starts from the same resident memory; the
baseline is a child that runs the CLI on a missing file (imports done, no data read). ``ru_maxrss`` of a
child counts the pages it inherited, so ``peak_kb - baseline_kb`` is what a case itself added.
"""

from __future__ import annotations

import json
import os
import sys

import explorer  # noqa: F401  (the torchvision shim precedes smp)
import explorer.analysis
import explorer.reporting.outputs
import explorer.training.train  # noqa: F401  (imported before the forks: no child pays for imports)
from explorer.cli import main


def run_forked(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """``(exit code, peak resident kB)`` of ``main(argv)`` in a forked child under ``env``."""
    pid = os.fork()
    if pid == 0:  # the child: quiet, its own environment, never returns
        code = 99
        try:
            os.environ.update(env)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = main(argv)
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss  # kB on Linux


def probe(cases: dict[str, dict]) -> dict:
    """Run every case forked; returns the baseline and each case's exit code and peak."""
    _, baseline = run_forked(["analyze", "missing.nii.gz", "--checkpoint", "missing.safetensors"], {})
    out = {}
    for name, case in cases.items():
        code, peak = run_forked(case["argv"], case.get("env", {}))
        out[name] = {"code": code, "peak_kb": peak}
    return {"baseline_kb": baseline, "cases": out}


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(json.dumps(probe(json.load(handle)["cases"])))  # noqa: T201
