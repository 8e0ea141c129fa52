"""Training: the held-out split and its gap, augmentations, a short real run, the CLI."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.attribution.windows import window_indices
from explorer.cli import main
from explorer.config import SAMPLE_DIR
from explorer.errors import InputError
from explorer.io.volume import load_mask, load_volume
from explorer.models.checkpoints import load_checkpoint
from explorer.stats.scan import dice
from explorer.training.train import FitHooks, Recipe, TrainSpec, _augment, split_slices, train


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """A 64 x 64 x 32 crop of the sample T1 and its grey-matter mask, as NIfTI files."""
    out = tmp_path_factory.mktemp("crop")
    paths = []
    for name in ("mni152_t1_2mm.nii.gz", "mni152_gm_mask_2mm.nii.gz"):
        img = nib.load(SAMPLE_DIR / name)
        small = img.slicer[6:70, 15:79, 24:56]
        nib.save(nib.Nifti1Image(np.asanyarray(small.dataobj), small.affine), out / name)
        paths.append(out / name)
    return tuple(paths)


def test_split_known_answer():
    mask = np.zeros((60, 4, 4), bool)
    mask[10:50, 1, 1] = True
    split = split_slices(mask, (-1, 0, 1), 0.2)  # 40 filled slices -> 8 held out, centred at 30
    assert split.val.tolist() == list(range(26, 34)) and split.gap == 3
    assert split.train.tolist() == list(range(0, 23)) + list(range(37, 60))


@pytest.mark.parametrize("offsets", [(-1, 0, 1), (-2, -1, 0, 1, 2), (-3, -2, -1, 0, 1, 2, 3)])
def test_training_and_validation_windows_share_no_slice(offsets):
    mask = np.zeros((80, 2, 2), bool)
    mask[12:70] = True
    split = split_slices(mask, offsets, 0.2)
    read_by_train = set(window_indices(80, offsets, split.train).ravel())
    read_by_val = set(window_indices(80, offsets, split.val).ravel())
    assert not read_by_train & read_by_val
    assert min(abs(int(t) - int(v)) for t in split.train for v in split.val) > split.gap


def test_split_errors():
    with pytest.raises(InputError, match="mask is empty"):
        split_slices(np.zeros((20, 2, 2), bool), (-1, 0, 1))
    with pytest.raises(InputError, match="leave 0 for training"):
        split_slices(np.ones((8, 2, 2), bool), (-1, 0, 1), 0.5)


def test_dice_known_answers():
    a = np.array([1, 1, 0, 0], bool)
    assert dice(a, a) == 1.0
    assert dice(a, np.array([1, 0, 1, 0], bool)) == 0.5
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_zflip_reverses_the_window_and_keeps_the_label():
    x = torch.arange(3.0)[None, :, None, None].expand(64, 3, 2, 2).contiguous()
    y = torch.rand(64, 1, 2, 2)
    fx, fy = _augment(x, y, torch.Generator().manual_seed(0), flips=False, zflip=True)
    flipped = fx[:, 0, 0, 0] == 2
    assert torch.equal(fy, y) and 10 < int(flipped.sum()) < 54  # about half, label untouched
    assert torch.equal(fx[flipped, :, 0, 0], torch.tensor([2.0, 1.0, 0.0]).expand(int(flipped.sum()), 3))
    gx, _ = _augment(x, y, torch.Generator().manual_seed(0), flips=True, zflip=False)
    assert torch.equal(gx, x)  # in-plane flips never reorder the channels


@pytest.mark.slow  # three short epochs (a repeat checks the seed): ~20 s on 2 cores
def test_two_epochs_on_a_crop_lower_the_loss_and_record_everything(crop):
    volume = load_volume(crop[0])
    mask = load_mask(crop[1], volume)
    recipe = Recipe(epochs=2, batch_size=4, seed=5)
    small = {"decoder_channels": [32, 16, 16, 8, 8]}
    quiet = FitHooks(progress=False)
    result = train(
        volume, mask, TrainSpec(strategy="imagenet-zflip", recipe=recipe, arch_kwargs=small, device="cpu"), hooks=quiet
    )
    assert len(result.losses) == 2 and result.losses[1] < result.losses[0]
    meta = result.meta
    assert meta.strategy == "imagenet-zflip" and meta.recipe["seed"] == 5 and meta.offsets == (-1, 0, 1)
    assert meta.training["init"]["weights"]["sha256"].startswith("b0353104")
    assert meta.training["init"]["first_conv_share"]["0"] == pytest.approx(0.4509, abs=1e-4)
    assert 0.0 <= meta.metrics["val_dice"] <= 1.0
    again = train(
        volume,
        mask,
        TrainSpec(
            strategy="imagenet-zflip", recipe=Recipe(epochs=1, batch_size=4, seed=5), arch_kwargs=small, device="cpu"
        ),
        hooks=quiet,
    )
    assert again.losses == result.losses[:1]  # the seed fixes the shuffles, augmentations and initialisation


@pytest.mark.slow  # one short training run through the CLI
def test_cli_train_writes_a_loadable_checkpoint(crop, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    rc = main(
        [
            "train",
            "--volume",
            str(crop[0]),
            "--mask",
            str(crop[1]),
            "--strategy",
            "imagenet-uniform",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and "held-out Dice" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.meta.strategy == "imagenet-uniform"
    assert ckpt.meta.training["command"].startswith("explorer train --volume ")
    assert list(ckpt.meta.training["init"]["first_conv_share"].values()) == pytest.approx([1 / 3] * 3)
    with torch.no_grad():
        assert ckpt.build_model()(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.slow  # one epoch through the CLI, then an analysis of the trainer's own checkpoint
def test_cli_train_honours_axis_normalisation_and_weights(crop, tmp_path, capsys):
    """Regression: --axis, --normalisation and --weights once ended up inside a comment and were ignored."""
    from explorer.models.weights import resolve_weights

    out, weights = tmp_path / "coronal.safetensors", resolve_weights("mobilenet_v2").path
    rc = main(
        [
            "train",
            "--volume",
            str(crop[0]),
            "--mask",
            str(crop[1]),
            "--strategy",
            "imagenet",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--axis",
            "coronal",
            "--normalisation",
            "minmax",
            "--weights",
            str(weights),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    meta = load_checkpoint(out).meta
    assert (meta.axis, meta.normalisation) == ("coronal", "minmax")
    assert meta.training["axis_index"] == 1
    assert meta.training["init"]["weights"]["source"] == "explicit"
    command = meta.training["command"]
    assert "--axis coronal" in command and "--normalisation minmax" in command and str(weights) in command
    capsys.readouterr()
    analysed = tmp_path / "analysed"
    assert (
        main(
            [
                *("analyze", str(crop[0]), "--checkpoint", str(out), "--target", "all", "--no-zflip"),
                *("--formats", "none", "--out", str(analysed)),  # HTML figures only: the axis is the subject
            ]
        )
        == 0
    )
    summary = json.loads((analysed / "summary.json").read_text())
    assert summary["inputs"]["axis"] == "coronal"  # the checkpoint's axis is the default
    assert summary["inputs"]["checkpoints"]["coronal"]["normalisation"] == "minmax"
    shares = pd.read_csv(analysed / "shares.csv")
    assert shares["slice"].max() == nib.load(crop[0]).shape[1] - 1  # coronal: slices along the second axis


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "uniform"], "unknown strategy 'uniform'; expected one of: imagenet"),
        (["--strategy", "random", "--offsets=-1,0"], "offsets (-1, 0) are not an odd"),
        (["--strategy", "random", "--out", "model.pt"], "does not end in .safetensors"),
    ],
)
def test_cli_train_bad_input_exits_2_with_one_line(crop, tmp_path, capsys, args, message):
    base = ["train", "--volume", str(crop[0]), "--mask", str(crop[1]), "--out", str(tmp_path / "m.safetensors")]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "m.safetensors").exists()
