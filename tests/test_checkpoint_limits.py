"""Checkpoints whose metadata or declared sizes are hostile; any smp architecture; hub ids from a real cache."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.config import Limits
from explorer.errors import InputError
from explorer.models.build import ARCHS, build_model, encoder_names
from explorer.models.checkpoints import CheckpointMeta, load_checkpoint, save_checkpoint
from explorer.models.hub import resolve_hub_checkpoint

SMALL = [16, 16, 8, 8, 8]
META = {
    "arch": "Unet",
    "encoder": "mobilenet_v2",
    "classes": 1,
    "offsets": [-1, 0, 1],
    "strategy": "random",
    "arch_kwargs": {"decoder_channels": SMALL},
}


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(decoder_channels=SMALL).eval()


def _smp_zip(
    net: torch.nn.Module,
    tmp: Path,
    config_changes: dict | None = None,
    config_text: str | None = None,
    weights: bytes | None = None,
    deflate_weights: bool = False,
) -> bytes:
    """``net``'s smp folder (``save_pretrained``) as a zip: ``ckpt/config.json`` deflated, with ``config_changes``
    (or ``config_text``) applied, and ``ckpt/model.safetensors`` (``weights`` in place of the net's) stored as
    it is unless ``deflate_weights``: random weights do not deflate, and deflating tens of MB costs seconds."""
    net.save_pretrained(tmp)
    config = json.loads((tmp / "config.json").read_text())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ckpt/config.json", config_text or json.dumps({**config, **(config_changes or {})}))
        zf.writestr(
            "ckpt/model.safetensors",
            weights if weights is not None else (tmp / "model.safetensors").read_bytes(),
            compress_type=zipfile.ZIP_DEFLATED if deflate_weights else zipfile.ZIP_STORED,
        )
    return buffer.getvalue()


def test_zip_member_is_refused_on_its_declared_size_before_inflating(net, tmp_path):
    bomb = _smp_zip(net, tmp_path, weights=bytes(64 * 1024**2), deflate_weights=True)  # 64 MB deflate to ~64 kB
    assert len(bomb) < 1024**2
    with pytest.raises(InputError, match=r"model.safetensors: zip member \(uncompressed\) is 64.0 MB, over the 8 MB"):
        load_checkpoint(bomb, name="bomb.zip", limits=Limits(max_bytes=8 * 1024**2))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"in_channels": 10**8}, r"'in_channels' is 100,000,000; expected an integer in 1..33"),
        ({"classes": 10**9}, r"'classes' is 1,000,000,000; expected an integer in 1..512"),
        ({"classes": "3"}, r"'classes' is '3'; expected an integer"),
        ({"decoder_channels": [20000, 16, 8, 8, 8]}, r"'arch_kwargs.decoder_channels.0' is 20,000"),
        ({"_model_class": 7}, r"'arch' is 7; expected a name"),
        ({"encoder_name": "tu-hf-hub:timm/resnet18.a1_in1k"}, r"unknown encoder 'tu-hf-hub:timm/resnet18.a1_in1k'"),
        ({"encoder_name": "tu-local-dir:/etc"}, r"unknown encoder 'tu-local-dir:/etc'"),
        ({"encoder_name": "x" * 200}, r"'encoder' is 'xxx.*expected a name of 1..128 characters"),
    ],
)
def test_smp_config_is_validated_before_anything_is_built(net, tmp_path, changes, message):
    with pytest.raises(InputError, match=message):
        load_checkpoint(_smp_zip(net, tmp_path, changes), name="c.zip")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" * 50 + "]" * 50, "nested more than 8 levels"),
        ("[1, 2, 3]", "config.json holds a list"),
        ('{"a": "' + "y" * 100_000 + '"}', "a string of 100,000 characters"),
    ],
)
def test_hostile_json_gives_one_error_not_a_traceback(net, tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_checkpoint(_smp_zip(net, tmp_path, config_text=text), name="c.zip")


def test_declared_shapes_are_compared_before_tensors_are_read(net, monkeypatch):
    state = {k: v.half() for k, v in net.state_dict().items()}
    state["segmentation_head.0.weight"] = torch.zeros(1, 8, 3, 3, dtype=torch.float16)[:, :7].contiguous()
    raw = st_save(state, metadata={"explorer": json.dumps(META)})

    def never(*args, **kwargs):
        raise AssertionError("tensors were read before the shape check")

    monkeypatch.setattr("explorer.models.checkpoints.st_load", never)
    with pytest.raises(InputError, match=r"shape mismatches: segmentation_head.0.weight \(1, 7, 3, 3\) vs "):
        load_checkpoint(raw, name="wrong.safetensors")


def test_non_integer_offsets_are_refused_not_truncated(net, tmp_path):
    path = save_checkpoint(net, CheckpointMeta(**{**META, "offsets": (-1, 0, 1)}), tmp_path / "m.safetensors")
    with pytest.raises(InputError, match=r"offsets \[-1.5, 0, 1.5\] are not integers"):
        load_checkpoint(path, meta={"offsets": [-1.5, 0, 1.5]})


def test_encoder_allow_list_is_smps_registry_plus_timm_names():
    names = encoder_names()
    assert {"mobilenet_v2", "resnet34", "tu-resnet18"} <= names
    assert not [n for n in names if ":" in n or "/" in n]
    assert build_model(encoder="tu-resnet18", device="meta").encoder is not None  # no download, no folder


@pytest.mark.parametrize("arch", sorted(set(ARCHS) - {"Unet", "DPT"}))  # DPT needs a timm ViT encoder
def test_any_smp_architecture_round_trips_through_an_smp_zip(arch, tmp_path):
    torch.manual_seed(0)
    net = build_model(arch=arch, encoder="resnet18", in_channels=3, classes=2).eval()
    ckpt = load_checkpoint(_smp_zip(net, tmp_path), name=f"{arch}.zip", meta={"strategy": "random"})
    assert (ckpt.meta.arch, ckpt.meta.classes, ckpt.meta.offsets) == (arch, 2, (-1, 0, 1))
    x = torch.randn(1, 3, 128, 128)  # PAN pools five times more than the others
    with torch.no_grad():
        assert torch.equal(ckpt.build_model()(x), net(x))


# ------------------------------------------------------------------------------------- Hugging Face Hub


def _hub_cache(
    root: Path,
    net: torch.nn.Module,
    repo: str = "alice/unet2p5d",
    commit: str = "c0ffee" * 6 + "beef",
    ref: str = "main",
) -> Path:
    """The layout huggingface_hub itself writes: models--owner--repo/{refs/<ref>, snapshots/<commit>/...}."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / ref).write_text(commit)
    net.save_pretrained(folder / "snapshots" / commit)
    return folder / "snapshots" / commit


def test_hub_id_resolves_from_the_local_cache_offline(net, tmp_path, monkeypatch):
    snapshot = _hub_cache(tmp_path, net)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_hub_checkpoint("hf:alice/unet2p5d", cache_dir=tmp_path) == snapshot
    assert resolve_hub_checkpoint(f"hf:alice/unet2p5d@{snapshot.name}", cache_dir=tmp_path) == snapshot
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    ckpt = load_checkpoint("hf:alice/unet2p5d", meta={"strategy": "random"})
    assert ckpt.name == "hf:alice/unet2p5d" and ckpt.meta.arch == "Unet" and ckpt.meta.offsets == (-1, 0, 1)
    for key, value in net.state_dict().items():
        assert torch.equal(ckpt.state_dict[key], value.float() if value.is_floating_point() else value), key


def test_hub_id_offline_and_not_cached_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as caught:
        resolve_hub_checkpoint("hf:alice/absent@v2", cache_dir=tmp_path)
    text = str(caught.value)
    assert "\n" not in text and "not in the local Hugging Face cache" in text
    assert f"hf download alice/absent config.json model.safetensors --revision v2 --cache-dir {tmp_path}" in text


@pytest.mark.parametrize("text", ["hf:../../etc", "hf:alice", "hf:alice/repo@../x", "hf:/abs/path", "hf:a/b c"])
def test_malformed_hub_ids_are_refused(text):
    with pytest.raises(InputError, match="not a Hugging Face Hub id"):
        resolve_hub_checkpoint(text)
