"""Reproduce the shipped zoo: train one checkpoint per strategy with the same command, then write the cards.

Run from the repository root (about 1-2 minutes per checkpoint on 2 CPU cores):

    HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py            # train all, then write README.md
    HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py --cards     # only rewrite README.md

Each checkpoint is trained by ``explorer train`` with identical arguments except ``--strategy``. The cards
are written from the checkpoints' own metadata; the held-out Dice is re-measured after the float16 round trip.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, also when not pip-installed
import explorer  # noqa: E402, F401  (before torchvision / smp)
from explorer.checkpoints import load_checkpoint
from explorer.cli import main as cli_main
from explorer.strategies import STRATEGIES
from explorer.train import evaluate_heldout
from explorer.volume import load_mask, load_volume

ZOO = ("random", "imagenet", "imagenet-uniform", "imagenet-zflip")
VOLUME = "sample_data/mni152_t1_2mm.nii.gz"
MASK = "sample_data/mni152_gm_mask_2mm.nii.gz"
COMMON = ["--volume", VOLUME, "--mask", MASK, "--encoder", "mobilenet_v2", "--arch", "Unet", "--epochs", "12",
          "--seed", "0", "--axis", "axial", "--device", "cpu"]
HERE = Path(__file__).resolve().parent


def command(strategy: str) -> list[str]:
    """The exact ``explorer train`` arguments for one zoo checkpoint."""
    return ["train", *COMMON, "--strategy", strategy, "--out", f"models/unet-mobilenet_v2-{strategy}.safetensors"]


def _shares(shares: dict) -> str:
    return ", ".join(f"{int(k):+d}: {float(v):.3f}" for k, v in sorted(shares.items(), key=lambda kv: int(kv[0])))


def card(path: Path) -> str:
    """A markdown card for one checkpoint, from its metadata (and a fresh float16 round-trip Dice)."""
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    volume = load_volume(VOLUME)
    dice16 = evaluate_heldout(ckpt.build_model(), volume, load_mask(MASK, volume), meta, device="cpu")
    init = meta.training["init"]
    weights = init["weights"]
    split = meta.training["split"]
    lines = [
        f"## `{path.name}`", "",
        f"- **strategy**: `{meta.strategy}` — {STRATEGIES[meta.strategy].definition}",
        f"- **command**: `explorer {shlex.join(command(meta.strategy))}` (run by `models/train_zoo.py`)",
        f"- **model**: {meta.arch} / {meta.encoder}, offsets {list(meta.offsets)}, classes {meta.classes}, "
        f"arch_kwargs `{meta.arch_kwargs}`, normalisation `{meta.normalisation}`, axis `{meta.axis}`",
        f"- **held-out Dice**: {meta.metrics['val_dice']:.4f} (float32, end of training); {dice16:.4f} after the "
        f"float16 file round trip — slices {split['val_slices'][0]}..{split['val_slices'][1]}, gap "
        f"{split['gap']} slices, {split['train_slices']} training slices",
        f"- **first-conv L1 shares before training**: {_shares(init['first_conv_share'])}",
        f"- **first-conv L1 shares after training**: {_shares(meta.training['first_conv_share_final'])}",
    ]
    if "sha256" in weights:
        lines.append(f"- **ImageNet weights**: `{weights['file']}` from {weights['source']}, SHA-256 "
                     f"`{weights['sha256']}`; {weights['loaded_keys']} encoder tensors loaded, missing "
                     f"{weights['missing_keys'] or 'none'}, unexpected {weights['unexpected_keys'] or 'none'}, "
                     f"dropped {weights['dropped_keys']}")
        rgb = weights["published_first_conv_share"]
        lines.append("- **published first-conv L1 shares**: " + ", ".join(f"{c} {rgb[c]:.3f}" for c in "RGB"))
        if "first_conv_max_abs_diff_to_published" in weights:
            diff = weights["first_conv_max_abs_diff_to_published"]
            lines.append(f"- **first conv before training vs the published file**: max abs diff {diff:.6g}"
                         + (" (identical)" if diff == 0 else " (changed by the strategy, by design)"))
    else:
        lines.append("- **ImageNet weights**: none (random initialisation, seed "
                     f"{meta.recipe['seed']})")
    lines += [f"- **training**: {meta.recipe['epochs']} epochs, batch {meta.recipe['batch_size']}, Adam lr "
              f"{meta.recipe['lr']}, {meta.recipe['loss']}, seed {meta.recipe['seed']}, {meta.training['device']}, "
              f"{meta.training['seconds']} s",
              f"- **file**: {path.stat().st_size / 1e6:.1f} MB, "
              f"SHA-256 `{hashlib.sha256(path.read_bytes()).hexdigest()}`",
              ""]
    return "\n".join(lines)


def write_cards() -> Path:
    """Write ``models/README.md`` from the checkpoints in ``models/``."""
    head = ["# Model zoo", "",
            "mobilenet_v2 U-Nets trained on `sample_data/` (MNI152 T1, grey-matter mask, axial slices) with the "
            "same recipe and seed; only the initialisation strategy differs. Reproduce with "
            "`HF_HUB_OFFLINE=1 .venv/bin/python models/train_zoo.py`. Weights are stored as float16 and "
            "restored to float32 on load (`explorer.checkpoints.load_checkpoint`).", ""]
    cards = [card(HERE / f"unet-mobilenet_v2-{s}.safetensors") for s in ZOO]
    out = HERE / "README.md"
    out.write_text("\n".join(head + cards))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", action="store_true", help="only rewrite models/README.md")
    args = parser.parse_args()
    if not args.cards:
        for strategy in ZOO:
            rc = cli_main(command(strategy))
            if rc:
                return rc
    print(f"wrote {write_cards()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
