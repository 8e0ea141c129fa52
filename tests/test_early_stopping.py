"""Early stopping: the patience rule, the held-out validation subject, the kept weights and the CLI options."""

from __future__ import annotations

import copy

import pytest
import torch

import explorer.training.train as train_module
from explorer.cli import main
from explorer.cohort.manifest import read_manifest
from explorer.errors import InputError
from explorer.models.checkpoints import load_checkpoint
from explorer.training.early_stopping import EarlyStopping
from explorer.training.subjects import load_subjects, split_rows, train_subjects, validation_split
from explorer.training.train import FitHooks, Recipe, TrainSpec, check_recipe

SMALL = {"decoder_channels": [16, 16, 8, 8, 8]}


def test_training_stops_patience_epochs_after_the_best_loss():
    stopper = EarlyStopping(patience=3)
    # best at epoch 2; 0.80 again (a tie) is no improvement; stop at epoch 2 + 3 = 5
    stops = [stopper.update(loss) for loss in (1.0, 0.80, 0.90, 0.80, 0.85, 0.1)[:5]]
    assert stops == [False, False, False, False, True]
    assert (stopper.best_epoch, stopper.best_loss, stopper.epochs) == (2, 0.80, 5)


def test_the_warmup_epochs_are_not_watched():
    # a random init's plateau (study run, mobilenet_v2 random s1): without the warm-up epoch 1 would be the best
    # and training would stop at epoch 3 with epoch 1's weights (held-out Dice 0.0)
    plateau = (1.41, 1.51, 1.52, 1.0, 1.1, 1.2)
    unwatched = EarlyStopping(patience=2)
    assert [unwatched.update(loss) for loss in plateau[:3]] == [False, False, True] and unwatched.best_epoch == 1
    stopper = EarlyStopping(patience=2, warmup=3)
    assert [stopper.update(loss) for loss in plateau] == [False, False, False, False, False, True]
    assert (stopper.best_epoch, stopper.best_loss) == (4, 1.0)


def test_without_early_stopping_the_recipe_record_is_unchanged():
    assert not {"patience", "val_subjects", "warmup"} & set(Recipe().to_dict())
    assert Recipe(patience=2).to_dict()["patience"] == 2 and Recipe(patience=2).to_dict()["val_subjects"] == 1
    with pytest.raises(InputError, match="patience of at least 1"):
        check_recipe(Recipe(patience=0))
    with pytest.raises(InputError, match="warm-up of 0 to epochs"):
        check_recipe(Recipe(epochs=3, patience=1, warmup=3))


def test_the_validation_subject_is_drawn_from_the_training_subjects_with_the_seed(small_cohort):
    train, _ = split_rows(read_manifest(small_cohort), "split")
    subjects = load_subjects(train)
    fitted, held = validation_split(subjects, Recipe(seed=0, patience=2))
    again, held_again = validation_split(subjects, Recipe(seed=0, patience=2))
    assert len(fitted) == 1 and len(held) == 1 and {fitted[0].id, held[0].id} == {"sub-01", "sub-02"}
    assert [s.id for s in held_again] == [s.id for s in held]
    assert validation_split(subjects, Recipe(seed=0)) == (subjects, [])
    with pytest.raises(InputError, match="2 training subject"):
        validation_split(subjects, Recipe(patience=1, val_subjects=2))


@pytest.mark.slow  # a tiny real run (one fitted subject of 20 slices, batch 4), validation losses scripted
def test_a_tiny_run_stops_at_best_plus_patience_and_keeps_the_best_epoch(small_cohort, monkeypatch):
    scripted, states = [0.9, 0.5, 0.6, 0.7, 0.4, 0.3], []

    def fake_validation_loss(model, x, y, loss_fn, device):
        assert x.shape[0] == 20 and y.shape[0] == 20  # the held-out training subject's 20 windows
        states.append(copy.deepcopy(model.state_dict()))
        return scripted[len(states) - 1]

    monkeypatch.setattr(train_module, "validation_loss", fake_validation_loss)
    train_rows, test_rows = split_rows(read_manifest(small_cohort), "split")
    spec = TrainSpec(
        strategy="random", recipe=Recipe(epochs=6, batch_size=4, patience=2), arch_kwargs=SMALL, device="cpu"
    )
    result = train_subjects(load_subjects(train_rows), load_subjects(test_rows), spec, hooks=FitHooks(progress=False))
    record = result.meta.training["epochs"]
    assert record == {
        "epochs_reached": 4,
        "max_epochs": 6,
        "best_epoch": 2,
        "val_loss": [0.9, 0.5, 0.6, 0.7],
        "stopped_early": True,
    }
    assert len(result.losses) == 4 and len(states) == 4
    kept = result.model.state_dict()
    assert all(torch.equal(kept[k], states[1][k]) for k in kept)  # epoch 2's weights, not the last epoch's
    assert not all(torch.equal(kept[k], states[3][k]) for k in kept)
    split = result.meta.training["split"]
    assert len(split["train"]) == 1 and len(split["val"]) == 1 and split["train_slices"] == 20
    assert result.meta.recipe["patience"] == 2


@pytest.mark.slow  # the same through the CLI: two epochs at most, patience 1
def test_cli_trains_with_early_stopping_and_records_it(small_cohort, tmp_path, capsys):
    out = tmp_path / "es.safetensors"
    assert (
        main(
            [
                "train",
                "--manifest",
                str(small_cohort),
                "--strategy",
                "random",
                "--epochs",
                "2",
                "--patience",
                "1",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    meta = load_checkpoint(out).meta
    record = meta.training["epochs"]
    # best epoch 1 stops at 1 + 1 = 2, best epoch 2 reaches the maximum 2: two epochs either way
    assert record["epochs_reached"] == 2 == len(record["val_loss"]) and not record["stopped_early"]
    assert record["best_epoch"] == 1 + record["val_loss"].index(min(record["val_loss"]))
    assert f"{record['epochs_reached']} epoch(s), best epoch {record['best_epoch']}" in printed
    assert "--patience 1 --val-subjects 1 --warmup 0" in meta.training["command"]


def test_early_stopping_with_one_volume_is_one_clear_error(sample_volume_path, sample_mask_path, tmp_path, capsys):
    out = tmp_path / "x.safetensors"
    assert (
        main(
            [
                "train",
                "--volume",
                str(sample_volume_path),
                "--mask",
                str(sample_mask_path),
                "--strategy",
                "random",
                "--epochs",
                "1",
                "--patience",
                "1",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--patience" in err[0] and "--manifest" in err[0]
    assert not out.exists()
