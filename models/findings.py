"""Regenerate the numbers of docs/findings.md: the zoo on the simulated cohort, per method, as cohort runs.

Every number in the findings comes from ``explorer cohort`` runs started here (the exact commands are
printed and written to ``OUT/commands.txt``), over every checkpoint found in the zoo folders (shipped seed 0
in ``models/``, seeds 1 and 2 in ``models/seeds/`` from ``models/train_zoo.py --seeds 1 2``):
- saliency and input×gradient on all subjects of ``sample_data/cohort/manifest.csv`` (training and held-out:
  the asymmetry is a property of the trained network; Dice is reported on held-out subjects only, which the
  cohort command does from each checkpoint's recorded subject split);
- integrated gradients (``--ig-steps``, default 8; its convergence delta is recorded) and occlusion with each
  2D+ baseline on the held-out subjects (four forward passes per slice, or eight forward+backward passes:
  with 15 checkpoints all ten subjects would take about two hours on a 2-core CPU; between strategies the
  unit of comparison is the trained model, so the subjects only make each model's mean more precise).
It then prints the findings' tables in Markdown.

Usage: ``.venv/bin/python models/findings.py [--out findings-out] [--ig-steps 8] [--zoo DIR ...]``
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "sample_data" / "cohort" / "manifest.csv"
RUNS = {  # name → (explorer cohort arguments, all subjects?)
    "saliency": (["--method", "saliency"], True),
    "input_x_gradient": (["--method", "input_x_gradient"], True),
    "occlusion (other neighbour)": (["--method", "occlusion", "--param", "replace=other"], False),
    "occlusion (centre slice)": (["--method", "occlusion", "--param", "replace=centre"], False),
    "occlusion (blurred copy)": (["--method", "occlusion", "--param", "replace=blur"], False),
    "occlusion (mean)": (["--method", "occlusion", "--param", "replace=mean"], False),
    "occlusion (constant 0)": (["--method", "occlusion", "--param", "replace=constant"], False),
    "integrated_gradients": (["--method", "integrated_gradients"], False),
}


def held_out_manifest(out: Path) -> Path:
    """The cohort manifest restricted to its ``test`` subjects (absolute paths)."""
    rows = list(csv.DictReader(MANIFEST.open()))
    path = out / "manifest_test.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            if row["split"] == "test":
                writer.writerow({**row, "volume": str(MANIFEST.parent / row["volume"]),
                                 "mask": str(MANIFEST.parent / row["mask"])})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="findings-out")
    parser.add_argument("--ig-steps", type=int, default=8, help="integrated-gradients steps (recorded)")
    parser.add_argument("--zoo", nargs="+", type=Path, default=[ROOT / "models", ROOT / "models" / "seeds"],
                        help="folders of checkpoints (default models/ and models/seeds/)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these rows of RUNS")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    zoo = [path for folder in args.zoo for path in sorted(folder.glob("*.safetensors"))]
    test_manifest = held_out_manifest(out)
    commands = []
    for name, (extra, all_subjects) in RUNS.items():
        if args.only and name not in args.only:
            continue
        if name == "integrated_gradients":
            extra = [*extra, "--param", f"steps={args.ig_steps}"]
        folder = out / name.replace(" ", "_").replace("(", "").replace(")", "")
        command = [sys.executable, "-m", "explorer.cli", "cohort", str(MANIFEST if all_subjects else test_manifest),
                   *[a for c in zoo for a in ("--checkpoint", str(c))], *extra, "--out", str(folder)]
        commands.append(shlex.join(["explorer", *command[3:]]))
        print(commands[-1], flush=True)
        subprocess.run(command, check=True)
    (out / "commands.txt").write_text("\n".join(commands) + "\n")
    for folder in sorted(p for p in out.iterdir() if (p / "cohort_summary.json").exists()):
        summary = json.loads((folder / "cohort_summary.json").read_text())
        print(f"\n### {folder.name}\n\n| group | models | volumes | AI [95% CI] | Dice [95% CI] | TOST p (±margin) |")
        print("|---|---:|---:|---|---|---:|")
        for group, g in summary["groups"].items():
            ai, dice = g["asymmetry_index"], g.get("dice") or {}
            eq = summary.get("equivalence", {}).get(group, {})
            print(f"| {group} | {g['n_models']} | {g['n_volumes']} | {_ci(ai)} | {_ci(dice)} | {_p(eq.get('p'))} |")
        print("\n| a | b | test | p | Holm p | effect |\n|---|---|---|---:|---:|---:|")
        for c in summary["comparisons"]:
            print(f"| {c['a']} | {c['b']} | {c['test']} | {_p(c['p'])} | {_p(c['p_holm'])} | "
                  f"{_num(c.get('effect_size'))} |")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _ci(entry: dict) -> str:
    if not entry or entry.get("mean") is None:
        return "n/a"
    lo, hi = entry.get("ci95") or [None, None]
    return f"{entry['mean']:+.3f} [{_num(lo)}, {_num(hi)}]"


if __name__ == "__main__":
    main()
