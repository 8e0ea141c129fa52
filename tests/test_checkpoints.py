"""Checkpoints: exact round trips, smp folders and zips, plain state dicts, refusing pickles, clear errors."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.errors import InputError
from explorer.models.build import build_model, first_conv
from explorer.models.checkpoints import CheckpointMeta, list_zoo, load_checkpoint, save_checkpoint

SMALL = {"decoder_channels": [32, 16, 16, 8, 8]}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(in_channels=3, **SMALL)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so the round trip checks them too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return net.eval()


def _meta(**changes) -> CheckpointMeta:
    base = dict(
        arch="Unet",
        encoder="mobilenet_v2",
        classes=1,
        offsets=(-1, 0, 1),
        strategy="imagenet-uniform",
        arch_kwargs=SMALL,
        training={"volume": {"name": "v.nii.gz"}},
        recipe={"seed": 3},
        metrics={"val_dice": 0.5},
    )
    return CheckpointMeta(**{**base, **changes})


def test_round_trip_is_exact_in_float32(model, tmp_path):
    path = save_checkpoint(model, _meta(), tmp_path / "m.safetensors", half=False)
    ckpt = load_checkpoint(path)
    assert ckpt.name == "m" and ckpt.meta == _meta() and len(ckpt.sha256) == 64
    rebuilt = ckpt.build_model()
    assert not rebuilt.training
    for (key, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=False):
        assert torch.equal(a, b), key
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
        assert rebuilt(x).shape == (2, 1, 64, 96)


def test_half_storage_restores_float32(model, tmp_path):
    path = save_checkpoint(model, _meta(), tmp_path / "m.safetensors")  # float16 by default
    ckpt = load_checkpoint(path)
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt.state_dict.values())
    for key, value in model.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(ckpt.state_dict[key], expected), key
    assert (
        path.stat().st_size
        < 0.6 * save_checkpoint(model, _meta(), tmp_path / "f.safetensors", half=False).stat().st_size
    )


def test_save_is_atomic_and_checks_the_name(model, tmp_path):
    save_checkpoint(model, _meta(), tmp_path / "sub" / "m.safetensors")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.safetensors"]  # no temp file left behind
    with pytest.raises(InputError, match="a .safetensors file"):
        save_checkpoint(model, _meta(), tmp_path / "m.pt")


def test_bytes_upload_has_the_file_hash(model, tmp_path):
    path = save_checkpoint(model, _meta(), tmp_path / "m.safetensors")
    a, b = load_checkpoint(path), load_checkpoint(path.read_bytes(), name="uploaded")
    assert a.sha256 == b.sha256 and b.name == "uploaded"


def test_smp_folder_and_zip(model, tmp_path):
    model.save_pretrained(tmp_path / "smp")
    folder = load_checkpoint(tmp_path / "smp", meta={"strategy": "imagenet"})
    assert (folder.meta.arch, folder.meta.encoder, folder.meta.offsets) == ("Unet", "mobilenet_v2", (-1, 0, 1))
    assert folder.meta.strategy == "imagenet" and folder.meta.arch_kwargs["decoder_channels"] == [32, 16, 16, 8, 8]
    archive = shutil.make_archive(str(tmp_path / "smp"), "zip", tmp_path / "smp")
    zipped = load_checkpoint(archive, meta={"strategy": "imagenet"})
    assert zipped.sha256 == folder.sha256
    for key, value in model.state_dict().items():
        assert torch.equal(zipped.state_dict[key], value.float() if value.is_floating_point() else value)


def test_plain_state_dict_with_caller_metadata(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    ckpt = load_checkpoint(
        tmp_path / "weights.pt",
        meta={"arch": "Unet", "encoder": "mobilenet_v2", "arch_kwargs": SMALL, "strategy": "random"},
    )
    assert ckpt.meta.offsets == (-1, 0, 1) and ckpt.meta.classes == 1  # read off the tensors
    assert torch.equal(first_conv(ckpt.build_model()).weight, first_conv(model).weight)


def test_plain_state_dict_without_metadata(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(InputError, match="metadata lacks arch, encoder"):
        load_checkpoint(tmp_path / "weights.pt")


def test_mismatched_state_dict_gives_a_clear_error(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(
        InputError,
        match=r"weights.pt: state dict does not fit Unet/mobilenet_v2 .* shape "
        r"mismatches: decoder.blocks.0.conv1.0.weight \(32, 1376, 3, 3\) vs "
        r"\(256, 1376, 3, 3\)",
    ):
        load_checkpoint(tmp_path / "weights.pt", meta={"arch": "Unet", "encoder": "mobilenet_v2"})
    with pytest.raises(InputError, match="missing keys"):
        load_checkpoint(tmp_path / "weights.pt", meta={"arch": "FPN", "encoder": "mobilenet_v2"})


class _WritesMarker:
    """Unpickling this object would create a file: the classic pickle code-execution attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"encoder.weight": torch.zeros(1), "evil": _WritesMarker(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(InputError, match="evil.pt: refused: not a plain tensor state dict"):
        load_checkpoint(path, meta={"arch": "Unet", "encoder": "mobilenet_v2"})
    with pytest.raises(InputError, match="refused"):
        load_checkpoint(path.read_bytes(), name="upload.pt")
    assert not marker.exists()
    if writer == "pickle":  # the control: plain unpickling really runs the payload
        pickle.loads(path.read_bytes())
        assert marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1', "corrupt safetensors"),  # header cut short
        (b"not a checkpoint at all", "refused"),
    ],
)
def test_broken_files(tmp_path, content, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_checkpoint(path)


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_truncated_checkpoint(model, tmp_path):
    path = save_checkpoint(model, _meta(), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="m.safetensors"):
        load_checkpoint(path)


def test_list_zoo_is_sorted(model, tmp_path):
    for name in ("b", "a"):
        save_checkpoint(model, _meta(), tmp_path / f"{name}.safetensors")
    (tmp_path / "notes.md").write_text("x")
    assert [p.name for p in list_zoo(tmp_path)] == ["a.safetensors", "b.safetensors"]


@pytest.mark.parametrize("arch", ["Unet", "FPN", "UnetPlusPlus", "DeepLabV3Plus"])
def test_every_architecture_round_trips_with_five_channels(arch, tmp_path):
    torch.manual_seed(0)
    net = build_model(arch=arch, in_channels=5, classes=2).eval()
    meta = _meta(arch=arch, classes=2, offsets=(-2, -1, 0, 1, 2), arch_kwargs={})
    ckpt = load_checkpoint(save_checkpoint(net, meta, tmp_path / f"{arch}.safetensors", half=False))
    x = torch.randn(1, 5, 64, 64)
    with torch.no_grad():
        out = ckpt.build_model()(x)
        assert out.shape == (1, 2, 64, 64) and torch.equal(out, net(x))


def test_unknown_architecture_lists_the_names():
    with pytest.raises(
        InputError,
        match="unknown architecture 'Transformer9000'; expected one of: DPT, "
        "DeepLabV3, DeepLabV3Plus, FPN, Linknet, MAnet, PAN, PSPNet, Segformer, UPerNet, Unet",
    ):
        build_model(arch="Transformer9000")


def test_shipped_zoo_loads_names_its_strategy_and_seed_and_records_a_subject_split():
    found = {}
    for path in list_zoo():
        ckpt = load_checkpoint(path)
        assert path.stem.endswith(f"-{ckpt.meta.strategy}-s{ckpt.meta.recipe['seed']}")
        found[ckpt.meta.strategy] = ckpt
    assert set(found) == {"random", "imagenet", "imagenet-uniform", "imagenet-symmetric", "imagenet-zflip"}
    for strategy, ckpt in found.items():
        weights = ckpt.meta.training["init"]["weights"]
        split = ckpt.meta.training["split"]
        assert split["unit"] == "subject", strategy
        assert [s["subject"] for s in split["test"]] == ["sub-03", "sub-06", "sub-08", "sub-10"], strategy
        assert not {s["volume_sha256"] for s in split["train"]} & {s["volume_sha256"] for s in split["test"]}
        dice = ckpt.meta.metrics["heldout_dice"]
        assert ckpt.meta.metrics["val_dice"] == pytest.approx(sum(dice.values()) / len(dice)), strategy
        if strategy.startswith("imagenet"):
            assert weights["sha256"].startswith("b0353104") and weights["missing_keys"] == [], strategy
        else:
            assert "sha256" not in weights
    assert found["imagenet"].meta.training["init"]["weights"]["first_conv_max_abs_diff_to_published"] == 0.0
    assert found["imagenet"].meta.training["init"]["first_conv_share"] == pytest.approx(
        {"-1": 0.3212, "0": 0.4509, "1": 0.2279}, abs=1e-4
    )
    for strategy in ("imagenet-uniform", "imagenet-symmetric"):  # symmetric by construction before training
        share = found[strategy].meta.training["init"]["first_conv_share"]
        assert share["-1"] == pytest.approx(share["1"], abs=1e-6), strategy


def test_shipped_float16_checkpoint_keeps_its_heldout_dice():
    from explorer.cohort.manifest import read_manifest
    from explorer.config import SAMPLE_DIR
    from explorer.training.subjects import heldout_dice, load_subjects

    ckpt = load_checkpoint(next(p for p in list_zoo() if p.stem.endswith("-imagenet-s0")))
    (row,) = [r for r in read_manifest(SAMPLE_DIR / "cohort" / "manifest.csv") if r.subject == "sub-03"]
    dice = heldout_dice(ckpt.build_model(), load_subjects([row]), ckpt.meta, device="cpu")["sub-03"]
    assert dice == pytest.approx(ckpt.meta.metrics["heldout_dice"]["sub-03"], abs=2e-3)


def test_first_conv_weight_is_read_from_the_state_dict_without_building_the_model() -> None:
    """The weight found by key (the model built on the meta device) is the one the built model's first conv holds."""
    from explorer.models.build import first_conv

    for path in list_zoo()[:2]:
        ckpt = load_checkpoint(path)
        assert torch.equal(ckpt.first_conv_weight(), first_conv(ckpt.build_model("cpu")).weight.detach())
