"""Regenerate the numbers of docs/findings.md: analyse the study's checkpoints, or recompute every table.

Three modes (run from the repository root):

    .venv/bin/python models/findings.py [--write]            # recompute every table of docs/findings.md
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python models/findings.py --study /work/zoo-study
    .venv/bin/python models/findings.py --methods [--out findings-out] [--ig-steps 8] [--zoo DIR ...]

- **recompute** (default, minutes, no network, no checkpoints): reads the committed per-volume × per-model
  tables in ``docs/findings/`` (:data:`TABLES`), recomputes each one's statistics with
  :func:`explorer.cohort.summary.summarise` (the code ``explorer cohort`` uses), checks them against the
  committed ``*_summary.json`` and prints the findings' tables in Markdown (``--write``: into docs/findings.md,
  between its ``<!-- findings.py: NAME -->`` and ``<!-- /findings.py -->`` markers).
- **--study DIR**: one ``explorer cohort`` per encoder (the default method, occlusion with the reversed
  windows; the held-out test subjects of ``sample_data/cohort/manifest.csv``) over the checkpoints that
  ``models/train_zoo.py --study DIR`` trained, then writes ``docs/findings/study_<encoder>.csv`` (cohort.csv
  joined with every checkpoint's SHA-256 and training record) and ``study_<encoder>_summary.json``.
- **--methods**: the method comparison on the 15-model zoo (one ``explorer cohort`` per attribution method
  and occlusion baseline, :data:`RUNS`); saliency and input×gradient on all subjects, occlusion and
  integrated gradients on the held-out ones. The exact commands go to ``OUT/commands.txt``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository, also when not pip-installed
from explorer.cohort.summary import summarise  # noqa: E402  (light: pandas, scipy)

if TYPE_CHECKING:
    from explorer.models.checkpoints import CheckpointMeta
MANIFEST = ROOT / "sample_data" / "cohort" / "manifest.csv"
FINDINGS = ROOT / "docs" / "findings"
DOC = ROOT / "docs" / "findings.md"
#: The committed per-volume × per-model tables (``<stem>.csv`` with ``<stem>_summary.json``) that
#: docs/findings.md reports, in its order.
TABLES = ("study_mobilenet_v2", "study_timm-tf_efficientnet_lite0", "cohort_occlusion")
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
                writer.writerow(
                    {**row, "volume": str(MANIFEST.parent / row["volume"]), "mask": str(MANIFEST.parent / row["mask"])}
                )
    return path


def analyse_study(study: Path, out: Path, encoders: list[str] | None = None) -> list[str]:
    """One ``explorer cohort`` per encoder (all, or those in ``encoders``) over ``study``'s checkpoints (held-out
    subjects, default method), then the committed tables: ``docs/findings/study_<encoder>.csv`` and
    ``study_<encoder>_summary.json``. The commands are appended to ``out/commands.txt``.

    Returns:
        The cohort commands run.
    """
    from explorer.io.files import file_sha256
    from explorer.models.checkpoints import load_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    test_manifest = held_out_manifest(out)
    metas = {path: load_checkpoint(path).meta for path in sorted(study.glob("*.safetensors"))}
    by_encoder: dict[str, list[Path]] = {}
    for path, meta in sorted(metas.items(), key=lambda kv: (kv[1].recipe["seed"], kv[1].strategy)):
        by_encoder.setdefault(meta.encoder, []).append(path)
    commands = []
    for encoder, paths in by_encoder.items():
        if encoders and encoder not in encoders:
            continue
        folder = out / encoder
        command = [
            sys.executable,
            "-m",
            "explorer.cli",
            "cohort",
            str(test_manifest),
            *[a for c in paths for a in ("--checkpoint", str(c))],
            "--workers",
            "1",
            "--out",
            str(folder),
        ]
        commands.append(shlex.join(["explorer", *command[3:]]))
        print(commands[-1], flush=True)
        subprocess.run(command, check=True)
        records = pd.DataFrame([training_record(path, metas[path], file_sha256(path)) for path in paths])
        rows = pd.read_csv(folder / "cohort.csv").merge(records, on="model", how="left", validate="many_to_one")
        rows.to_csv(FINDINGS / f"study_{encoder}.csv", index=False)
        (FINDINGS / f"study_{encoder}_summary.json").write_text((folder / "cohort_summary.json").read_text())
        with (out / "commands.txt").open("a") as handle:
            handle.write(commands[-1] + "\n")
    return commands


def training_record(path: Path, meta: CheckpointMeta, sha256: str) -> dict:
    """One checkpoint's columns in the committed table: its SHA-256 and how it was trained."""
    epochs = meta.training.get("epochs") or {}
    return {
        "model": path.stem,
        "checkpoint_sha256": sha256,
        "encoder": meta.encoder,
        "epochs_reached": epochs.get("epochs_reached", meta.recipe["epochs"]),
        "max_epochs": meta.recipe["epochs"],
        "best_epoch": epochs.get("best_epoch"),
        "stopped_early": epochs.get("stopped_early"),
        "patience": meta.recipe.get("patience"),
        "slice_stride": meta.recipe["slice_stride"],
        "train_slices": meta.training["split"]["train_slices"],
        "val_subjects": " ".join(s["subject"] for s in meta.training["split"].get("val", [])),
        "train_seconds": meta.training["seconds"],
        "heldout_dice_mean": meta.metrics["val_dice"],
        "train_command": meta.training["command"],
    }


def recompute(stem: str) -> tuple[pd.DataFrame, dict]:
    """The committed table ``docs/findings/<stem>.csv`` and its statistics recomputed by ``explorer cohort``'s own
    :func:`~explorer.cohort.summary.summarise` (held out = the manifest's ``test`` subjects; every model was trained
    on its ``train`` subjects), checked against the committed ``<stem>_summary.json``.

    Raises:
        ValueError: a recomputed group interval or p differs from the committed summary.
    """
    rows = pd.read_csv(FINDINGS / f"{stem}.csv")
    committed = json.loads((FINDINGS / f"{stem}_summary.json").read_text())
    rows["held_out"] = rows["split"].eq("test")
    summary = summarise(rows, margin=committed["equivalence_margin"]["margin"])
    for name, group in committed["groups"].items():
        old, new = group[group["endpoint"]], summary["groups"][name][group["endpoint"]]
        if not all(
            abs(a - b) < 1e-9 for a, b in zip([old["mean"], *old["ci95"]], [new["mean"], *new["ci95"]], strict=True)
        ):
            raise ValueError(f"{stem}: {name}'s interval {new} differs from the committed {old}")
    if [round(c["p_holm"], 12) for c in committed["comparisons"]] != [
        round(c["p_holm"], 12) for c in summary["comparisons"]
    ]:
        raise ValueError(f"{stem}: the recomputed Holm p-values differ from the committed summary")
    return rows, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study",
        type=Path,
        default=None,
        metavar="DIR",
        help="analyse the study checkpoints in DIR and write docs/findings/study_*",
    )
    parser.add_argument("--encoder", nargs="+", default=None, help="with --study: only these encoders")
    parser.add_argument("--methods", action="store_true", help="the method comparison on the 15-model zoo")
    parser.add_argument("--out", type=Path, default=Path("findings-out"))
    parser.add_argument("--ig-steps", type=int, default=8, help="integrated-gradients steps (recorded)")
    parser.add_argument(
        "--zoo",
        nargs="+",
        type=Path,
        default=[ROOT / "models", ROOT / "models" / "seeds"],
        help="folders of checkpoints for --methods (default models/ and models/seeds/)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="with --methods: run only these rows of RUNS")
    parser.add_argument("--tables", action="store_true", help="with --methods: only print the tables in --out")
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the recomputed tables into docs/findings.md "
        "(between its <!-- findings.py: NAME --> markers) instead of printing them",
    )
    args = parser.parse_args()
    if args.study is not None:
        analyse_study(args.study, args.out, args.encoder)
    elif args.methods:
        run_methods(args)
        return
    blocks = {stem: table_block(stem) for stem in TABLES}
    if args.write:
        DOC.write_text(write_blocks(DOC.read_text(), blocks))
        print(f"wrote the tables of {', '.join(blocks)} into {DOC}")
    else:
        print("\n\n".join(blocks.values()))


def table_block(stem: str) -> str:
    """The Markdown tables of one committed table, recomputed (or a line saying it is not committed yet)."""
    if not (FINDINGS / f"{stem}.csv").exists():
        return f"(`docs/findings/{stem}.csv` is not committed yet: no tables.)"
    rows, summary = recompute(stem)
    return "\n".join(study_tables(stem, rows, summary))


def write_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the content between ``<!-- findings.py: STEM -->`` and ``<!-- /findings.py -->`` replaced
    by ``blocks[STEM]``.

    Raises:
        ValueError: a stem of ``blocks`` has no such block in ``text``.
    """
    for stem, block in blocks.items():
        pattern = re.compile(rf"(<!-- findings\.py: {re.escape(stem)} -->\n).*?(\n<!-- /findings\.py -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{DOC} has no block <!-- findings.py: {stem} --> ... <!-- /findings.py -->")
        text = pattern.sub(lambda m, b=block: m.group(1) + b + m.group(2), text)
    return text


def run_methods(args: argparse.Namespace) -> None:
    """The ``--methods`` mode: one cohort run per row of :data:`RUNS`, then their tables."""
    out = args.out
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
        command = [
            sys.executable,
            "-m",
            "explorer.cli",
            "cohort",
            str(MANIFEST if all_subjects else test_manifest),
            *[a for c in zoo for a in ("--checkpoint", str(c))],
            *extra,
            "--out",
            str(folder),
        ]
        commands.append(shlex.join(["explorer", *command[3:]]))
        print(commands[-1], flush=True)
        subprocess.run(command, check=True)
    (out / "commands.txt").write_text("\n".join(commands) + "\n")
    for folder in sorted(p for p in out.iterdir() if (p / "cohort_summary.json").exists()):
        print_tables(folder)


def study_tables(stem: str, rows: pd.DataFrame, summary: dict) -> list[str]:
    """The Markdown tables of one committed table: groups, per-model values, training, comparisons."""
    endpoint = summary["endpoint"]
    margin = summary["equivalence_margin"]["margin"]
    lines = [
        f"### {stem} ({rows['model'].nunique()} models × {rows['subject'].nunique()} volumes, endpoint `{endpoint}`)",
        "",
        f"| strategy | models | volumes | mean [95% t-interval over models] | mean \\|value\\| [one-sided 95% "
        f"upper] | below ±{margin:g}? p (p_min), Holm p | shares −1 / 0 / +1 | held-out Dice [95% CI] |",
        "|---|---:|---:|---|---|---|---|---|",
    ]
    for name, group in summary["groups"].items():
        eq = summary["equivalence"][name]
        shares = " / ".join(f"{v:.2f}" for _, v in sorted(group["mean_share"].items(), key=lambda kv: int(kv[0])))
        lines.append(
            f"| `{name}` | {group['n_models']} | {group['n_volumes']} | {_ci(group[endpoint])} | "
            f"{eq['mean_abs']:.3f} [{eq['upper']:.3f}] | {_p(eq['p'])} ({_p(eq['p_min'])}), "
            f"{_p(eq.get('p_holm'))} | {shares} | {_ci(group.get('dice') or {}, signed=False)} |"
        )
    lines += [
        "",
        f"| strategy | per-model `{endpoint}` (seed: mean over volumes) | centre share per model (min–max) |",
        "|---|---|---|",
    ]
    seeds = rows.drop_duplicates("model").set_index("model")["seed"]
    centre = rows[rows["error"].isna()].groupby("model")["share_0"].mean()
    for name, group in summary["groups"].items():
        cells = sorted((int(seeds[m]), v) for m, v in group["model_means"].items())
        shares = centre[list(group["model_means"])]
        lines.append(
            f"| `{name}` | "
            + ", ".join(f"s{s} {v:+.3f}" for s, v in cells)
            + f" | {shares.min():.2f}–{shares.max():.2f} |"
        )
    if "epochs_reached" in rows:
        lines += [
            "",
            "| strategy | epochs reached (max) | best epoch | held-out Dice per model (min–max) |",
            "|---|---|---|---|",
        ]
        models = rows.drop_duplicates("model").sort_values("seed")
        for name, part in models.groupby("strategy", sort=False):
            lines.append(
                f"| `{name}` | {', '.join(str(int(e)) for e in part['epochs_reached'])} "
                f"({int(part['max_epochs'].iloc[0])}) | {', '.join(str(int(b)) for b in part['best_epoch'])}"
                f" | {part['heldout_dice_mean'].min():.3f}–{part['heldout_dice_mean'].max():.3f} |"
            )
    lines += ["", "| a | b | test (unit, n) | p (p_min) | Holm p | effect |", "|---|---|---|---|---:|---:|"]
    for c in summary["comparisons"]:
        lines.append(
            f"| `{c['a']}` | `{c['b']}` | {c['test'].split(' (')[0]} ({c['unit']}, {c['n']}) | "
            f"{_p(c['p'])} ({_p(c['p_min'])}) | {_p(c['p_holm'])} | {_num(c.get('effect_size'))} |"
        )
    family = summary["family"]
    lines += ["", f"Holm family: {family['size']} tests ({family['members']})."]
    return lines


def print_tables(folder: Path) -> None:
    """One cohort run's tables in Markdown: groups, per-model AI (seed spread), comparisons."""
    summary = json.loads((folder / "cohort_summary.json").read_text())
    print(
        f"\n### {folder.name}\n\n| group | models | volumes | AI [95% CI] | mean shares −1 / 0 / +1 | "
        "held-out Dice [95% CI] | magnitude-equivalence p (±margin), unit |\n|---|---:|---:|---|---|---|---|"
    )
    for group, g in summary["groups"].items():
        ai, dice = g["asymmetry_index"], g.get("dice") or {}
        eq = summary.get("equivalence", {}).get(group, {})
        shares = " / ".join(f"{v:.3f}" for _, v in sorted(g["mean_share"].items(), key=lambda kv: int(kv[0])))
        print(
            f"| {group} | {g['n_models']} | {g['n_volumes']} | {_ci(ai)} | {shares} | {_ci(dice)} | "
            f"{_p(eq.get('p'))}, {eq.get('unit', 'n/a').split(' ')[0]} |"
        )
    rows = list(csv.DictReader((folder / "cohort.csv").open()))
    per_model: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        if not row.get("error"):
            per_model.setdefault(row["strategy"], {}).setdefault(row["model"], []).append(float(row["asymmetry_index"]))
    print("\n| group | AI per model (mean over volumes) |\n|---|---|")
    for group, models in per_model.items():
        print(
            f"| {group} | "
            + ", ".join(f"{m.rsplit('-', 1)[-1]} {sum(v) / len(v):+.3f}" for m, v in sorted(models.items()))
            + " |"
        )
    print(
        "\n| a | b | test (unit) | p | Holm p | effect | median difference a − b [95% CI] |\n"
        "|---|---|---|---:|---:|---:|---|"
    )
    for c in summary["comparisons"]:
        lo, hi = c.get("ci95") or [None, None]
        median = (
            f"{c['median_difference']:+.3f} [{_num(lo)}, {_num(hi)}]" if c.get("median_difference") is not None else ""
        )
        print(
            f"| {c['a']} | {c['b']} | {c['test'].split(' (')[0]} ({c['unit']}) | {_p(c['p'])} | "
            f"{_p(c['p_holm'])} | {_num(c.get('effect_size'))} | {median} |"
        )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _ci(entry: dict, signed: bool = True) -> str:
    if not entry or entry.get("mean") is None:
        return "n/a"
    lo, hi = entry.get("ci95") or [None, None]
    if not signed:
        return f"{entry['mean']:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{entry['mean']:+.3f} [{_num(lo)}, {_num(hi)}]"


if __name__ == "__main__":
    main()
