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
    parser.add_argument("--tables", action="store_true", help="only print the tables of the runs in --out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    zoo = [path for folder in args.zoo for path in sorted(folder.glob("*.safetensors"))]
    if args.tables:
        for folder in sorted(p for p in out.iterdir() if (p / "cohort_summary.json").exists()):
            print_tables(folder)
        return
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
        print_tables(folder)


def print_tables(folder: Path) -> None:
    """One cohort run's tables in Markdown: groups, per-model AI (seed spread), comparisons."""
    summary = json.loads((folder / "cohort_summary.json").read_text())
    print(f"\n### {folder.name}\n\n| group | models | volumes | AI [95% CI] | mean shares −1 / 0 / +1 | "
          "held-out Dice [95% CI] | TOST p (±margin), unit |\n|---|---:|---:|---|---|---|---|")
    for group, g in summary["groups"].items():
        ai, dice = g["asymmetry_index"], g.get("dice") or {}
        eq = summary.get("equivalence", {}).get(group, {})
        shares = " / ".join(f"{v:.3f}" for _, v in sorted(g["mean_share"].items(), key=lambda kv: int(kv[0])))
        print(f"| {group} | {g['n_models']} | {g['n_volumes']} | {_ci(ai)} | {shares} | {_ci(dice)} | "
              f"{_p(eq.get('p'))}, {eq.get('unit', 'n/a').split(' ')[0]} |")
    rows = list(csv.DictReader((folder / "cohort.csv").open()))
    per_model: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if not row.get("error"):
            per_model.setdefault(row["strategy"], {}).setdefault(row["model"], []).append(
                float(row["asymmetry_index"]))
    print("\n| group | AI per model (mean over volumes) |\n|---|---|")
    for group, models in per_model.items():
        print(f"| {group} | " + ", ".join(f"{m.rsplit('-', 1)[-1]} {sum(v) / len(v):+.3f}"
                                          for m, v in sorted(models.items())) + " |")
    print("\n| a | b | test (unit) | p | Holm p | effect | median difference a − b [95% CI] |\n"
          "|---|---|---|---:|---:|---:|---|")
    for c in summary["comparisons"]:
        lo, hi = c.get("ci95") or [None, None]
        median = (f"{c['median_difference']:+.3f} [{_num(lo)}, {_num(hi)}]" if c.get("median_difference") is not None
                  else "")
        print(f"| {c['a']} | {c['b']} | {c['test'].split(' (')[0]} ({c['unit']}) | {_p(c['p'])} | "
              f"{_p(c['p_holm'])} | {_num(c.get('effect_size'))} | {median} |")


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
