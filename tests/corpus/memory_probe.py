"""CLI runs, each in a forked child: its exit code, what it printed, and its own peak memory (from ``os.wait4``).

Usage: ``python tests/corpus/memory_probe.py CASES.json`` with ``{"cases": {name: {"argv": [...], "env": {...}}}}``;
prints ``{"baseline_kb": ..., "cases": {name: {"code": exit code, "peak_kb": peak resident set, "stdout": ...,
"stderr": ...}}}``. The package is imported once, before the forks (whatever that import prints goes to this
process's own stderr), so every child starts from the same resident memory and no child pays for the imports; the
baseline is a child that runs the CLI on a missing file (imports done, no data read). ``ru_maxrss`` of a child
counts the pages it inherited, so ``peak_kb - baseline_kb`` is what a case itself added.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import explorer  # noqa: F401  (the torchvision shim precedes smp)
import explorer.analysis
import explorer.reporting.outputs
import explorer.training.train  # noqa: F401  (imported before the forks: no child pays for imports)
from explorer.cli import main


def run_forked(argv: list[str], env: dict[str, str]) -> dict:
    """``main(argv)`` in a forked child under ``env``: its exit code, peak resident kB, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: its own environment and output files, never returns
            code = 99
            try:
                os.environ.update(env)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                code = main(argv)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        printed = {}
        for key, handle in (("stdout", out), ("stderr", err)):
            handle.seek(0)
            printed[key] = handle.read().decode("utf-8", "replace")
    return {"code": os.waitstatus_to_exitcode(status), "peak_kb": usage.ru_maxrss, **printed}  # kB on Linux


def probe(cases: dict[str, dict]) -> dict:
    """Run every case forked; returns the baseline and each case's exit code, peak and output."""
    baseline = run_forked(["analyze", "missing.nii.gz", "--checkpoint", "missing.safetensors"], {})["peak_kb"]
    out = {name: run_forked(case["argv"], case.get("env", {})) for name, case in cases.items()}
    return {"baseline_kb": baseline, "cases": out}


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(json.dumps(probe(json.load(handle)["cases"])))  # noqa: T201
