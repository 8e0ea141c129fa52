"""``explorer debias``: first-conv surgery's known answers, fine-tuning that keeps the tie, provenance in the
child, resume from the cache, bad inputs (one message, nothing written), and the CLI end to end.

Data: a 64 × 64 × 32 crop of the sample T1 and its grey-matter mask (training steps stay short on a CPU), and
the shipped ImageNet checkpoint as the parent.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from enginetools import attribute

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.attribution.fastpath import prepare_model
from explorer.cache.store import ResultCache
from explorer.cli import main
from explorer.config import REPO_ROOT, SAMPLE_DIR
from explorer.debias import DebiasData, DebiasSpec, debias, surgery, symmetrise
from explorer.debias.run import child_key
from explorer.debias.surgery import conv_key
from explorer.errors import InputError
from explorer.io.normalise import channel_stats_for
from explorer.models.build import build_model
from explorer.models.checkpoints import Checkpoint, CheckpointMeta, load_checkpoint
from explorer.stats.scan import split_asymmetry
from explorer.study import Study

PARENT = REPO_ROOT / "models" / "unet-mobilenet_v2-imagenet-s0.safetensors"
CPU = torch.device("cpu")


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


@pytest.fixture(scope="module")
def parent() -> Checkpoint:
    return load_checkpoint(PARENT)


def test_symmetric_surgery_ties_mirrored_kernels_and_keeps_everything_else(parent) -> None:
    key = conv_key(parent)
    child = surgery(parent, "symmetric")
    before, after = parent.state_dict[key], child.state_dict[key]
    assert torch.equal(after[:, 0], after[:, 2])
    assert torch.allclose(after[:, 0], (before[:, 0] + before[:, 2]) / 2)
    assert torch.equal(after[:, 1], before[:, 1])  # the centre keeps its own kernel
    assert not torch.equal(before[:, 0], before[:, 2])  # the check above can fail: the parent is not tied
    assert all(torch.equal(v, parent.state_dict[k]) for k, v in child.state_dict.items() if k != key)
    # a window of identical slices gets the same first-conv response
    assert torch.allclose(after.sum(dim=1), before.sum(dim=1), atol=1e-6)


def test_uniform_surgery_gives_every_channel_the_mean_kernel(parent) -> None:
    key = conv_key(parent)
    after = surgery(parent, "uniform").state_dict[key]
    mean = parent.state_dict[key].mean(dim=1)
    for channel in range(3):
        assert torch.allclose(after[:, channel], mean)
    assert torch.equal(
        symmetrise(torch.arange(6.0).reshape(1, 3, 2), (-1, 0, 1), "symmetric"),
        torch.tensor([[[2.0, 3.0], [2.0, 3.0], [2.0, 3.0]]]),
    )


@pytest.fixture(scope="module")
def sample_stack(parent, sample_volume_path) -> np.ndarray:
    """The sample's axial slices, normalised as the parent expects (read once for the module)."""
    return Study.load(sample_volume_path).slices("axial", parent.meta.normalisation)


@pytest.fixture(scope="module")
def operated(parent) -> dict[str, torch.nn.Module]:
    """The prepared model after each surgery mode, made once: attribution never changes the model it is given."""
    return {mode: prepare_model(surgery(parent, mode).build_model(CPU), CPU) for mode in ("symmetric", "uniform")}


@pytest.mark.parametrize("mode", ["symmetric", "uniform"])
@pytest.mark.parametrize("method, params", [("occlusion", {"replace": "mean"}), ("saliency", {})])
def test_surgery_has_no_channel_asymmetry(parent, sample_stack, operated, mode, method, params) -> None:
    """``f∘R = f`` after either surgery: the channel asymmetry is 0 (every method is covered for the symmetric
    mode by tests/test_split.py, which uses this same surgery)."""
    stack, model = sample_stack, operated[mode]
    run = dict(
        method=method,
        params=params,
        target="predicted",
        slices=[30, 45],
        channel_stats=channel_stats_for(parent.meta.normalisation, 3),
    )
    plain = attribute(model, stack, parent.meta.offsets, **run)
    flipped = attribute(model, stack, parent.meta.offsets, reverse=True, **run)
    channel, _ = split_asymmetry(plain.masses, flipped.masses, parent.meta.offsets)
    assert np.isfinite(channel[[30, 45]]).all()
    assert np.abs(channel[[30, 45]]).max() < 1e-3


def test_surgery_reports_its_dice_cost_and_provenance(parent, crop, tmp_path) -> None:
    """Surgery on the crop, analysed: the child's channel asymmetry is 0, the report states the held-out Dice of
    both and the change; the child file loads and records parent, variant, mode, data hashes and seed."""
    study = Study.load(*crop)
    result = debias(parent, DebiasData(study=study), DebiasSpec(variants=("surgery",), seed=3))
    report = result.report
    child = report["children"][0]
    assert 0 < report["parent"]["heldout_dice"] <= 1 and 0 < child["heldout_dice"] <= 1
    assert child["dice_change"] == pytest.approx(child["heldout_dice"] - report["parent"]["heldout_dice"])
    assert 0 < child["prediction_dice_vs_parent"] <= 1 and 0 <= child["changed_fraction"] < 1
    split = child["channel_asymmetry"][crop[0].name]
    assert abs(split["mean"]) < 1e-3 and max(abs(v) for v in split["ci95"]) < 1e-3
    assert abs(report["parent"]["channel_asymmetry"][crop[0].name]["mean"]) > 1e-3  # the parent is not symmetric
    assert child["first_conv_share"]["-1"] == child["first_conv_share"]["1"]
    from explorer.debias.outputs import write_debias

    written = write_debias(result, tmp_path / "out", formats=("html",))
    loaded = load_checkpoint(written[child["name"]])
    provenance = loaded.meta.training["debias"]
    assert provenance["parent"]["sha256"] == parent.sha256 and provenance["parent"]["name"] == parent.name
    assert (provenance["variant"], provenance["mode"], provenance["seed"]) == ("surgery", "symmetric", 3)
    assert provenance["data"]["volume"]["sha256"] == study.volume.sha256
    assert provenance["data"]["mask"]["sha256"] == study.mask.sha256
    assert loaded.meta.metrics["parent_val_dice"] == pytest.approx(report["parent"]["heldout_dice"])
    assert json.loads((tmp_path / "out" / "debias.json").read_text())["children"][0]["name"] == child["name"]
    assert (tmp_path / "out" / "figures" / "debias.html").is_file()


def test_surgery_without_a_mask_reports_no_dice(parent, crop) -> None:
    result = debias(parent, DebiasData(study=Study.load(crop[0])), DebiasSpec(), analyse=False, cache=False)
    child = result.report["children"][0]
    assert child["heldout_dice"] is None and result.report["parent"]["heldout_dice"] is None
    assert 0 < child["prediction_dice_vs_parent"] <= 1


def test_finetune_keeps_the_tie_stops_early_and_resumes_from_the_cache(parent, crop, tmp_path) -> None:
    """One short epoch on the crop: the first conv stays exactly tied (gradients tied too), the report says how
    far the held-out Dice is from the parent's; a second run with the same inputs is served from the cache
    (same bytes), one with another seed is a new child."""
    data = DebiasData(study=Study.load(*crop))
    spec = DebiasSpec(variants=("finetune",), epochs=1, slice_stride=4, batch_size=4, seed=0)
    cache = ResultCache(directory=tmp_path / "cache")
    messages: list[str] = []
    first = debias(parent, data, spec, cache=cache, analyse=False, progress=lambda f, m: messages.append(m))
    assert "finetune: batch 1 of " in " ".join(messages)
    child = first.children[0]
    weight = child.checkpoint.state_dict[conv_key(child.checkpoint)]
    assert torch.equal(weight[:, 0], weight[:, 2])
    record = child.record
    assert record["epochs_run"] == 1 and record["best_epoch"] in (0, 1) and len(record["early_stopping_dice"]) == 2
    assert "recovery" in record and isinstance(record["recovered"], bool)
    assert record["recipe"]["epochs"] == 1 and record["recipe"]["lr"] == parent.meta.recipe["lr"]
    assert record["recipe_source"] == "the parent's recorded recipe"
    assert child.checkpoint.meta.training["debias"]["freeze_encoder"] is False
    again = debias(parent, data, spec, cache=cache, analyse=False)
    assert again.children[0].record["from_cache"] and not record["from_cache"]
    assert again.children[0].blob == child.blob and again.children[0].checkpoint.sha256 == child.checkpoint.sha256
    other = DebiasSpec(variants=("finetune",), epochs=1, slice_stride=4, batch_size=4, seed=1)
    recipe = other.recipe_for(parent.meta, "finetune")[0]
    assert child_key(parent, data, other, "finetune", recipe) != child_key(
        parent, data, spec, "finetune", spec.recipe_for(parent.meta, "finetune")[0]
    )


def _one_channel() -> Checkpoint:
    model = build_model(in_channels=1)
    meta = CheckpointMeta(arch="Unet", encoder="mobilenet_v2", classes=1, offsets=(0,), strategy="random")
    return Checkpoint("one-channel", "0" * 64, meta, {k: v.clone() for k, v in model.state_dict().items()})


def test_bad_inputs_are_refused_with_one_message(parent, crop, tmp_path) -> None:
    study = Study.load(crop[0])
    with pytest.raises(InputError, match="one-channel: offsets \\(0,\\) have no mirrored pair"):
        debias(_one_channel(), DebiasData(study=study), DebiasSpec(), cache=False)
    with pytest.raises(InputError, match="no mask for the finetune variant"):
        debias(parent, DebiasData(study=study), DebiasSpec(variants=("surgery", "finetune")), cache=False)
    broken = Checkpoint(
        "no-conv", parent.sha256, parent.meta, {k: v for k, v in parent.state_dict.items() if k != conv_key(parent)}
    )
    with pytest.raises(InputError, match="no-conv: the first convolution .* is missing"):
        debias(broken, DebiasData(study=study), DebiasSpec(), cache=False)
    with pytest.raises(InputError, match="unknown variant 'prune'"):
        DebiasSpec(variants=("prune",))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mask", "WRONG_GRID"], "mask has shape"),
        (["--variant", "finetune"], "no mask for the finetune variant"),
        (["--checkpoint-file", "BAD_PT"], "state dict does not fit"),
        (["--mode", "diagonal"], "unknown surgery mode 'diagonal'"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(parent, crop, tmp_path, capsys, args, message) -> None:
    wrong = tmp_path / "wrong.nii.gz"
    img = nib.load(crop[1])
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:, :, :20], img.affine), wrong)
    bad_pt = tmp_path / "bad.pt"
    ordered = parent.build_model().state_dict()  # module order: the first conv first, so offsets are inferred
    torch.save({k: v for k, v in ordered.items() if "decoder" not in k}, bad_pt)  # a U-Net without its decoder
    checkpoint = str(bad_pt) if "--checkpoint-file" in args else str(PARENT)
    extra = [a for a in args if a != "--checkpoint-file" and a != "BAD_PT"]
    extra = [str(wrong) if a == "WRONG_GRID" else a for a in extra]
    argv = ["debias", checkpoint, "--volume", str(crop[0]), "--out", str(tmp_path / "out"), *extra]
    if "--variant" not in argv:
        argv += ["--variant", "surgery"]
    if checkpoint == str(bad_pt):
        argv += ["--arch", "Unet", "--encoder", "mobilenet_v2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_cli_surgery_end_to_end(crop, tmp_path, capsys) -> None:
    out = tmp_path / "debiased"
    assert (
        main(
            [
                "debias",
                str(PARENT),
                "--volume",
                str(crop[0]),
                "--mask",
                str(crop[1]),
                "--variant",
                "surgery",
                "--mode",
                "uniform",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "[surgery]: held-out Dice" in printed and "prediction Dice vs parent" in printed
    report = json.loads((out / "debias.json").read_text())
    child = report["children"][0]
    assert child["mode"] == "uniform" and abs(child["channel_asymmetry"][crop[0].name]["mean"]) < 1e-3
    assert len(set(child["first_conv_share"].values())) == 1
    command = load_checkpoint(out / child["file"]).meta.training["debias"]["command"]
    assert command.startswith(f"explorer debias {PARENT} --volume {crop[0]}") and "--mode uniform" in command


def test_manifest_finetune_holds_out_subjects(parent, tmp_path) -> None:
    """A manifest of three cropped subjects: two train (one drawn for early stopping), one test; Dice is the
    held-out subject's, and the split is recorded in the child."""
    cohort = SAMPLE_DIR / "cohort"
    lines = ["subject,volume,mask,split"]
    for subject, split in (("sub-01", "train"), ("sub-02", "train"), ("sub-03", "test")):
        for kind in ("T1w", "gm_mask"):
            img = nib.load(cohort / f"{subject}_{kind}.nii.gz")
            small = img.slicer[10:74, 20:84, 30:50]
            nib.save(nib.Nifti1Image(np.asanyarray(small.dataobj), small.affine), tmp_path / f"{subject}_{kind}.nii.gz")
        lines.append(f"{subject},{subject}_T1w.nii.gz,{subject}_gm_mask.nii.gz,{split}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    data = DebiasData.from_manifest(tmp_path / "manifest.csv")
    spec = DebiasSpec(variants=("surgery", "finetune"), epochs=1, slice_stride=4, batch_size=4)
    result = debias(parent, data, spec, analyse=False, cache=False)
    surgery_record, finetune_record = (c.record for c in result.children)
    assert 0 < result.report["parent"]["heldout_dice"] <= 1 and 0 < surgery_record["heldout_dice"] <= 1
    assert finetune_record["split"]["unit"] == "subject" and len(finetune_record["split"]["early_stopping"]) == 1
    assert set(finetune_record["split"]["train"]) | set(finetune_record["split"]["early_stopping"]) == {
        "sub-01",
        "sub-02",
    }
    provenance = result.children[1].checkpoint.meta.training["debias"]
    assert [s["subject"] for s in provenance["data"]["test"]] == ["sub-03"]


def test_retrain_uses_the_parents_recipe_and_a_symmetric_strategy(parent, crop) -> None:
    data = DebiasData(study=Study.load(*crop))
    spec = DebiasSpec(variants=("retrain",), mode="uniform", epochs=1, slice_stride=4, batch_size=4)
    child = debias(parent, data, spec, analyse=False, cache=False).children[0]
    meta = child.checkpoint.meta
    assert child.checkpoint.name == parent.name + "-retrain-imagenet-uniform"
    assert meta.strategy == "imagenet-uniform" and meta.arch_kwargs == parent.meta.arch_kwargs
    assert meta.recipe["loss"] == parent.meta.recipe["loss"] and meta.recipe["epochs"] == 1
    assert meta.training["debias"]["strategy"] == "imagenet-uniform" and child.record["epochs_run"] == 1
    assert 0 <= child.record["heldout_dice"] <= 1
