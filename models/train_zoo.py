"""Reproduce the zoo: train every strategy x seed on the cohort's training subjects, then write the cards.

Run from the repository root:

    HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py --seeds 0 1 2    # train 15 models, then README.md
    HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py --cards          # only rewrite README.md
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py --study /work/zoo-study  # the study

The study (``--study DIR``) trains :func:`study_queue` — 10 seeds of ``imagenet``, ``imagenet-uniform`` and
``random`` on mobilenet_v2, then 3 seeds of each on timm-tf_efficientnet_lite0 — with early stopping on one
training subject held out for validation (``--patience``), in seed order across strategies so that a cut-off
run leaves a balanced set. It is resumable: a checkpoint already in DIR with the same model and recipe is
kept. The study's checkpoints are not committed (the cohort table computed from them is, in docs/findings/).

Each checkpoint is trained by ``explorer train --manifest`` with identical arguments except ``--strategy`` and
``--seed``: the training subjects of ``sample_data/cohort/manifest.csv`` (``split`` = train), held-out Dice on
its test subjects (never seen in training). Seed 0 goes to ``models/`` (shipped), other seeds to
``models/seeds/`` (ignored by git) unless ``--out`` says otherwise. The cards are written from the checkpoints'
own metadata; the held-out Dice is re-measured after the float16 round trip. ``models/zoo_run.json`` records
the last training command and its wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, also when not pip-installed
import explorer  # noqa: E402, F401  (before torchvision / smp)
from explorer.cli import main as cli_main
from explorer.cohort.manifest import read_manifest
from explorer.models.checkpoints import load_checkpoint
from explorer.models.strategies import STRATEGIES
from explorer.training.subjects import heldout_dice, load_subjects, split_rows

ZOO = ("random", "imagenet", "imagenet-uniform", "imagenet-symmetric", "imagenet-zflip")
MANIFEST = "sample_data/cohort/manifest.csv"
EPOCHS, STRIDE = 4, 3  # 84 Adam steps a model (v1: 89); what a shared 2-core CPU allowed (see README)
STUDY_STRATEGIES = ("imagenet", "imagenet-uniform", "random")
#: (encoder, seeds) of the study, in training order: mobilenet_v2 first, then the replication encoder.
STUDY_ENCODERS = (("mobilenet_v2", 10), ("timm-tf_efficientnet_lite0", 3))
#: At most 8 epochs at slice stride 6 (5 fitted subjects, 70 windows: 9 Adam steps an epoch; 72 in all, the shipped
#: zoo had 84); early stopping watches from epoch 4 (a random init can sit on a loss plateau for 3 epochs: without
#: the warm-up one stopped at epoch 3 with its epoch-1 weights, held-out Dice 0) and stops 2 epochs after the best
#: validation loss. About 2 min a model on one thread of the shared 2-core CPU (docs/findings.md).
STUDY_EPOCHS, STUDY_STRIDE, STUDY_PATIENCE, STUDY_WARMUP, STUDY_VAL_SUBJECTS = 8, 6, 2, 3, 1
HERE = Path(__file__).resolve().parent
RUN_RECORD = HERE / "zoo_run.json"
LICENCE = (
    "The `imagenet*` checkpoints start from torchvision's ImageNet weights for mobilenet_v2 (BSD-3-Clause "
    "code and weights), which were trained on ImageNet; ImageNet's terms of access allow non-commercial "
    "research and educational use only, so treat these checkpoints as research artefacts under those "
    "terms. The `random` checkpoints use no pretrained weights. The training data are the simulated "
    "subjects of `sample_data/cohort/` (derived from the MNI ICBM152 2009a template; see its PROVENANCE.md)."
)


def checkpoint_name(strategy: str, seed: int, encoder: str = "mobilenet_v2") -> str:
    """File name of one zoo checkpoint."""
    return f"unet-{encoder}-{strategy}-s{seed}.safetensors"


def study_queue() -> list[tuple[str, int, str]]:
    """The study's ``(encoder, seed, strategy)`` in training order: by encoder, then seed, then strategy."""
    return [
        (encoder, seed, strategy) for encoder, n in STUDY_ENCODERS for seed in range(n) for strategy in STUDY_STRATEGIES
    ]


def study_command(encoder: str, seed: int, strategy: str, out: Path) -> list[str]:
    """The exact ``explorer train`` arguments for one study checkpoint: the zoo's :func:`command` with the study's
    epochs, stride and encoder, and early stopping on a held-out training subject."""
    early_stopping = [
        "--patience",
        str(STUDY_PATIENCE),
        "--warmup",
        str(STUDY_WARMUP),
        "--val-subjects",
        str(STUDY_VAL_SUBJECTS),
    ]
    return command(strategy, seed, out, STUDY_EPOCHS, STUDY_STRIDE, encoder) + early_stopping


def same_recipe(path: Path, encoder: str, seed: int, strategy: str) -> bool:
    """True when ``path`` holds a study checkpoint of this encoder, strategy and seed with the study's recipe."""
    meta = load_checkpoint(path).meta
    recipe = meta.recipe
    return (
        meta.encoder == encoder
        and meta.strategy == strategy
        and recipe.get("seed") == seed
        and recipe.get("epochs") == STUDY_EPOCHS
        and recipe.get("slice_stride") == STUDY_STRIDE
        and recipe.get("patience") == STUDY_PATIENCE
        and recipe.get("warmup") == STUDY_WARMUP
        and recipe.get("val_subjects") == STUDY_VAL_SUBJECTS
    )


def train_study(out: Path) -> int:
    """Train every checkpoint of :func:`study_queue` into ``out`` that is not there yet; log each to ``study_run.json``.

    Returns:
        0, or the first failing ``explorer train`` exit status.
    """
    out.mkdir(parents=True, exist_ok=True)
    record = out / "study_run.json"
    runs = json.loads(record.read_text()) if record.exists() else []
    queue = study_queue()
    for i, (encoder, seed, strategy) in enumerate(queue, 1):
        path = out / checkpoint_name(strategy, seed, encoder)
        if path.exists() and same_recipe(path, encoder, seed, strategy):
            print(f"[{i}/{len(queue)}] kept {path.name} (same recipe)", flush=True)
            continue
        started = time.perf_counter()
        rc = cli_main(study_command(encoder, seed, strategy, out))
        if rc:
            return rc
        runs.append(
            {
                "checkpoint": path.name,
                "wall_seconds": round(time.perf_counter() - started, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **load_checkpoint(path).meta.training["epochs"],
            }
        )
        record.write_text(json.dumps(runs, indent=1) + "\n")
        print(f"[{i}/{len(queue)}] {path.name}: {runs[-1]['wall_seconds']} s", flush=True)
    return 0


def default_dir(seed: int) -> Path:
    """``models/`` for seed 0 (shipped), ``models/seeds/`` for the others."""
    return HERE if seed == 0 else HERE / "seeds"


def command(
    strategy: str, seed: int, out: Path, epochs: int = EPOCHS, stride: int = STRIDE, encoder: str = "mobilenet_v2"
) -> list[str]:
    """The exact ``explorer train`` arguments for one zoo checkpoint."""
    try:
        shown = out.resolve().relative_to(HERE.parent)
    except ValueError:
        shown = out
    return [
        "train",
        "--manifest",
        MANIFEST,
        "--split-column",
        "split",
        "--encoder",
        encoder,
        "--arch",
        "Unet",
        "--epochs",
        str(epochs),
        "--slice-stride",
        str(stride),
        "--seed",
        str(seed),
        "--axis",
        "axial",
        "--device",
        "cpu",
        "--strategy",
        strategy,
        "--out",
        str(shown / checkpoint_name(strategy, seed, encoder)),
    ]


def _shares(shares: dict) -> str:
    return ", ".join(f"{int(k):+d}: {float(v):.3f}" for k, v in sorted(shares.items(), key=lambda kv: int(kv[0])))


def card(path: Path, test_subjects: list) -> str:
    """A markdown card for one checkpoint, from its metadata (and a fresh float16 round-trip Dice)."""
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    dice16 = heldout_dice(ckpt.build_model(), test_subjects, meta, device="cpu")
    init, split = meta.training["init"], meta.training["split"]
    weights = init["weights"]
    per_subject = ", ".join(f"{k} {v:.4f}" for k, v in meta.metrics["heldout_dice"].items())
    lines = [
        f"## `{path.name}`",
        "",
        f"- **strategy**: `{meta.strategy}` — {STRATEGIES[meta.strategy].definition}",
        f"- **seed**: {meta.recipe['seed']}",
        f"- **command**: `{meta.training['command']}` (run by `models/train_zoo.py`)",
        f"- **model**: {meta.arch} / {meta.encoder}, offsets {list(meta.offsets)}, classes {meta.classes}, "
        f"arch_kwargs `{meta.arch_kwargs}`, normalisation `{meta.normalisation}`, axis `{meta.axis}`",
        f"- **split** (by subject, manifest `{meta.training['manifest']['name']}` SHA-256 "
        f"`{meta.training['manifest']['sha256'][:16]}…`): train {', '.join(s['subject'] for s in split['train'])} "
        f"({split['train_slices']} training slices); test {', '.join(s['subject'] for s in split['test'])}",
        f"- **held-out Dice** (whole test volumes, subjects never seen in training): mean "
        f"{meta.metrics['val_dice']:.4f} (float32, end of training) — {per_subject}; mean "
        f"{sum(dice16.values()) / len(dice16):.4f} after the float16 file round trip",
        f"- **first-conv L1 shares before training**: {_shares(init['first_conv_share'])}",
        f"- **first-conv L1 shares after training**: {_shares(meta.training['first_conv_share_final'])}",
    ]
    if "sha256" in weights:
        lines.append(
            f"- **ImageNet weights**: `{weights['file']}` from {weights['source']}, SHA-256 "
            f"`{weights['sha256']}`; {weights['loaded_keys']} encoder tensors loaded, missing "
            f"{weights['missing_keys'] or 'none'}, unexpected {weights['unexpected_keys'] or 'none'}"
        )
        rgb = weights["published_first_conv_share"]
        lines.append("- **published first-conv L1 shares**: " + ", ".join(f"{c} {rgb[c]:.3f}" for c in "RGB"))
        if "first_conv_max_abs_diff_to_published" in weights:
            diff = weights["first_conv_max_abs_diff_to_published"]
            lines.append(
                f"- **first conv before training vs the published file**: max abs diff {diff:.6g}"
                + (" (identical)" if diff == 0 else " (changed by the strategy, by design)")
            )
    else:
        lines.append(f"- **ImageNet weights**: none (random initialisation, seed {meta.recipe['seed']})")
    lines += [
        f"- **training**: {meta.recipe['epochs']} epoch(s), slice stride {meta.recipe['slice_stride']}, "
        f"batch {meta.recipe['batch_size']}, Adam lr {meta.recipe['lr']}, {meta.recipe['loss']}, "
        f"{meta.training['device']}, {meta.training['seconds']} s",
        f"- **file**: {path.stat().st_size / 1e6:.1f} MB, SHA-256 `{hashlib.sha256(path.read_bytes()).hexdigest()}`",
        "",
    ]
    return "\n".join(lines)


def heldout_table() -> list[str]:
    """Markdown table of the mean held-out Dice of every checkpoint present (all seeds), per strategy."""
    rows = ["| strategy | " + " | ".join(f"seed {s}" for s in range(3)) + " |", "|---|---|---|---|"]
    for strategy in ZOO:
        cells = []
        for seed in range(3):
            path = default_dir(seed) / checkpoint_name(strategy, seed)
            cells.append(f"{load_checkpoint(path).meta.metrics['val_dice']:.4f}" if path.exists() else "—")
        rows.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    return rows


def write_cards() -> Path:
    """Write ``models/README.md`` from the seed-0 checkpoints in ``models/`` (and the seeds table)."""
    _, test_rows = split_rows(read_manifest(MANIFEST), "split", source=MANIFEST)
    test = load_subjects(test_rows)
    runs = json.loads(RUN_RECORD.read_text()) if RUN_RECORD.exists() else []
    runs = [runs] if isinstance(runs, dict) else runs
    timing = (
        "; ".join(
            f"`{r['command']}`: {r['models']} models in {r['wall_seconds']} s wall time ({r['host']})" for r in runs
        )
        or "not recorded"
    )
    head = [
        "# Model zoo (v2)",
        "",
        "mobilenet_v2 U-Nets trained on the six training subjects of `sample_data/cohort/` (simulated T1 "
        "volumes, grey-matter masks, axial slices) with the same recipe; only the initialisation strategy "
        "and the seed differ. Held-out Dice is measured on the four test subjects, which no model saw in "
        "training. Seed 0 of every strategy ships here (float16, restored to float32 on load by "
        "`explorer.models.checkpoints.load_checkpoint`); seeds 1 and 2 are reproduced into `models/seeds/` "
        "(ignored by git) by the command below.",
        "",
        "Reproduce all 15 (then these cards):",
        "",
        "    HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py --seeds 0 1 2",
        "",
        f"Recipe: {EPOCHS} epochs over the training subjects' slices with slice stride {STRIDE} (about 160 "
        "windows an epoch, 84 Adam steps of 8 in all) — what a 2-core CPU shared with other jobs allowed; pass "
        "`--epochs N --slice-stride 1` for longer training. Runs recorded (models/zoo_run.json): "
        f"{timing}.",
        "",
        "## Held-out Dice (mean over the test subjects)",
        "",
        *heldout_table(),
        "",
        "## Licence chain",
        "",
        LICENCE,
        "",
    ]
    cards = [card(HERE / checkpoint_name(s, 0), test) for s in ZOO]
    out = HERE / "README.md"
    out.write_text("\n".join(head + cards))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(ZOO), choices=ZOO)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default models/ for seed 0, models/seeds/ for the others)",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--slice-stride", type=int, default=STRIDE)
    parser.add_argument("--cards", action="store_true", help="only rewrite models/README.md")
    parser.add_argument(
        "--study",
        type=Path,
        default=None,
        metavar="DIR",
        help="train the early-stopping study (study_queue()) into DIR, resumably, and nothing else",
    )
    args = parser.parse_args()
    if args.study is not None:
        return train_study(args.study)
    if not args.cards:
        started = time.perf_counter()
        for seed in args.seeds:
            for strategy in args.strategies:
                out = args.out or default_dir(seed)
                out.mkdir(parents=True, exist_ok=True)
                rc = cli_main(command(strategy, seed, out, args.epochs, args.slice_stride))
                if rc:
                    return rc
        runs = json.loads(RUN_RECORD.read_text()) if RUN_RECORD.exists() else []
        runs = [runs] if isinstance(runs, dict) else runs
        runs.append(
            {
                "command": "HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py " + shlex.join(sys.argv[1:]),
                "models": len(args.seeds) * len(args.strategies),
                "wall_seconds": round(time.perf_counter() - started),
                "host": "shared 2-core CPU",
            }
        )
        RUN_RECORD.write_text(json.dumps(runs, indent=1) + "\n")
        if args.out is not None:
            return 0
    print(f"wrote {write_cards()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
