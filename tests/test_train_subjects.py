"""Manifest reading and training on subjects with a subject-level held-out split (sample_data/cohort)."""

from __future__ import annotations

import pytest

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.cli import main
from explorer.cohort.manifest import read_manifest
from explorer.config import SAMPLE_DIR
from explorer.diagnostics.logits import split_from_meta
from explorer.errors import InputError
from explorer.models.checkpoints import load_checkpoint
from explorer.training.subjects import heldout_dice, load_subjects, split_rows, train_subjects
from explorer.training.train import FitHooks, Recipe, TrainSpec

COHORT = SAMPLE_DIR / "cohort" / "manifest.csv"


def test_the_cohort_manifest_reads_with_paths_relative_to_it():
    rows = read_manifest(COHORT)
    assert [r.subject for r in rows] == [f"sub-{i:02d}" for i in range(1, 11)]
    assert rows[0].volume == SAMPLE_DIR / "cohort" / "sub-01_T1w.nii.gz" and rows[0].volume.exists()
    assert rows[2].extra == {"split": "test"}
    train, test = split_rows(rows, "split")
    assert [r.subject for r in test] == ["sub-03", "sub-06", "sub-08", "sub-10"] and len(train) == 6


@pytest.mark.parametrize(
    "text, message",
    [
        ("subject,mask\na,b\n", "no 'volume' column"),
        ("subject,volume\n", "no rows"),
        ("subject,volume\na,x.nii.gz\na,y.nii.gz\n", "subject 'a' repeats row 2"),
    ],
)
def test_bad_manifests_raise_one_input_error(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_manifest(path)


def test_a_missing_volume_is_named_when_the_subjects_are_loaded(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("subject,volume\na,missing.nii.gz\n")
    with pytest.raises(InputError, match="missing.nii.gz: no such file"):
        load_subjects(read_manifest(path))


def test_a_split_needs_both_sides_and_masks(tmp_path):
    rows = read_manifest(COHORT)
    with pytest.raises(InputError, match="no column 'fold'"):
        split_rows(rows, "fold")
    with pytest.raises(InputError, match="6 train and 0 test"):
        split_rows([r for r in rows if r.extra["split"] == "train"], "split")


@pytest.mark.slow  # one short epoch on two small subjects
def test_training_on_subjects_records_the_split_and_per_subject_heldout_dice(small_cohort):
    train_rows, test_rows = split_rows(read_manifest(small_cohort), "split")
    train, test = load_subjects(train_rows), load_subjects(test_rows)
    assert train[0].study.volume.shape != train[1].study.volume.shape  # padded to one canvas for training
    spec = TrainSpec(
        strategy="imagenet-uniform",
        recipe=Recipe(epochs=1, batch_size=4),
        arch_kwargs={"decoder_channels": [32, 16, 16, 8, 8]},
        device="cpu",
    )
    result = train_subjects(train, test, spec, hooks=FitHooks(progress=False))
    meta = result.meta
    split = meta.training["split"]
    assert split["unit"] == "subject" and [s["subject"] for s in split["train"]] == ["sub-01", "sub-02"]
    assert [s["subject"] for s in split["test"]] == ["sub-03"]
    assert split["test"][0]["volume_sha256"] == test[0].study.volume.sha256
    assert split["train_slices"] == 40
    assert set(meta.metrics["heldout_dice"]) == {"sub-03"}
    assert meta.metrics["val_dice"] == meta.metrics["heldout_dice"]["sub-03"]
    assert heldout_dice(result.model, test, meta, "cpu") == pytest.approx(meta.metrics["heldout_dice"], abs=1e-9)
    assert "within-volume" in split_from_meta(meta, test[0].study.volume.sha256, "axial", 20)


@pytest.mark.slow  # the same through the CLI, with --slice-stride
def test_cli_trains_from_a_manifest(small_cohort, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "--manifest",
                str(small_cohort),
                "--strategy",
                "random",
                "--epochs",
                "1",
                "--slice-stride",
                "2",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "held-out subjects' Dice sub-03" in capsys.readouterr().out
    meta = load_checkpoint(out).meta
    assert meta.recipe["slice_stride"] == 2 and meta.training["split"]["train_slices"] == 20
    assert "--manifest" in meta.training["command"] and "--slice-stride 2" in meta.training["command"]
    assert main(["train", "--strategy", "random", "--volume", "x.nii.gz", "--out", str(out)]) == 2  # no --mask
