"""The attribution engine: known answers on hand-built networks, batching invariance, BN folding, OOM fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from enginetools import attribute
from torch import nn

from explorer.attribution.fastpath import prepare_model, run_adaptive
from explorer.attribution.methods import METHODS, TARGETS, occlusion_baselines, resolve_params
from explorer.errors import InputError
from explorer.models.build import build_model
from explorer.stats.scan import asymmetry_index, shares_from_masses

OFFSETS = (-1, 0, 1)
CPU = torch.device("cpu")


def toy_net(seed: int = 0, *, channel0_only: bool = False, uniform_first: bool = False) -> nn.Module:
    """Conv-BN-ReLU-conv network; optionally reading only channel 0, or with a channel-uniform first conv."""
    torch.manual_seed(seed)
    first = nn.Conv2d(3, 6, 3, padding=1)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        if channel0_only:
            first.weight[:, 1:] = 0
        if uniform_first:
            first.weight[:] = first.weight.mean(dim=1, keepdim=True)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
    return nn.Sequential(first, bn, nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 1, 1)).eval()


@pytest.fixture()
def stack(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(7, 20, 27)).astype(np.float32)


def run(model: nn.Module, stack: np.ndarray, **kwargs) -> object:
    return attribute(prepare_model(model, CPU), stack, OFFSETS, **kwargs)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("target", ["all", "predicted"])
def test_batched_equals_one_by_one(stack: np.ndarray, method: str, target: str) -> None:
    model = toy_net(1)
    batched = run(model, stack, method=method, target=target, batch_size=4, keep_maps=True)
    single = run(model, stack, method=method, target=target, batch_size=1, keep_maps=True)
    np.testing.assert_array_equal(batched.prediction, single.prediction)
    np.testing.assert_allclose(batched.masses, single.masses, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(batched.maps.astype(np.float32), single.maps.astype(np.float32), rtol=1e-2, atol=1e-3)
    assert batched.maps.shape == (7, 3, 20, 27) and batched.maps.dtype == np.float16
    assert np.isfinite(batched.masses).any()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_shares_sum_to_one(stack: np.ndarray, method: str) -> None:
    result = run(toy_net(2), stack, method=method, target="abs")
    shares = shares_from_masses(result.masses)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-9)
    assert (shares > 0).all()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_network_reading_only_channel0_gives_share_one_to_offset_minus_one(stack: np.ndarray, method: str) -> None:
    shares = shares_from_masses(run(toy_net(3, channel0_only=True), stack, method=method, target="abs").masses)
    np.testing.assert_allclose(shares[:, 0], 1.0, atol=1e-6)


def test_reversed_windows_map_back_to_offsets(stack: np.ndarray) -> None:
    """With reversed channels, channel 0 holds slice z+1: the channel-0 network now attends to offset +1."""
    result = run(toy_net(3, channel0_only=True), stack, target="abs", reverse=True)
    np.testing.assert_allclose(shares_from_masses(result.masses)[:, 2], 1.0, atol=1e-6)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_uniform_first_conv_on_z_symmetric_volume_has_no_asymmetry(rng: np.random.Generator, method: str) -> None:
    image = rng.normal(size=(24, 30)).astype(np.float32)
    symmetric = np.repeat(image[None], 6, axis=0)  # constant along z: slice z-1 == slice z+1 everywhere
    result = run(toy_net(4, uniform_first=True), symmetric, method=method, target="abs")
    ai = asymmetry_index(shares_from_masses(result.masses), OFFSETS)
    tolerance = 0.05 if method == "smoothgrad" else 1e-5  # smoothgrad's noise differs between channels
    assert np.abs(ai.mean()) < tolerance
    if method != "smoothgrad":
        np.testing.assert_allclose(ai, 0.0, atol=1e-5)


def test_imagenet_like_first_conv_is_asymmetric_on_the_same_volume(rng: np.random.Generator) -> None:
    """Control for the test above: the same network with unequal channel kernels is asymmetric."""
    model = toy_net(4, uniform_first=True)
    with torch.no_grad():
        model[0].weight[:, 0] *= 2.0
    symmetric = np.repeat(rng.normal(size=(1, 24, 30)).astype(np.float32), 6, axis=0)
    ai = asymmetry_index(shares_from_masses(run(model, symmetric, target="abs").masses), OFFSETS)
    assert ai.mean() > 0.2


def test_predicted_target_skips_slices_without_foreground(stack: np.ndarray) -> None:
    model = toy_net(5)
    with torch.no_grad():
        model[-1].bias.fill_(-1e4)  # nothing is ever predicted
    result = run(model, stack, method="integrated_gradients", target="predicted")
    assert np.isnan(result.masses).all() and not result.prediction.any()


def test_mask_target_uses_the_mask_and_skips_empty_slices(stack: np.ndarray) -> None:
    mask = np.zeros(stack.shape, dtype=bool)
    mask[2:5, 5:15, 5:20] = True
    result = run(toy_net(6), stack, target="mask", mask=mask)
    assert np.isnan(result.masses[[0, 1, 5, 6]]).all() and np.isfinite(result.masses[2:5]).all()


def test_bn_folding_and_channels_last_keep_smp_outputs() -> None:
    model = build_model(decoder_channels=[32, 16, 16, 8, 8]).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    prepared = prepare_model(model, CPU)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the shared model must not be mutated"
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(
            prepared(x.contiguous(memory_format=torch.channels_last)), model(x), atol=1e-4, rtol=1e-4
        )


def test_out_of_memory_halves_the_batch_then_falls_back_to_cpu() -> None:
    calls: list[tuple[int, str]] = []
    moved: list[str] = []

    def work(chunk, device):  # a fake GPU that can only hold 2 slices, and later none at all
        calls.append((len(chunk), device.type))
        if device.type == "cuda" and (len(chunk) > 2 or chunk[0] >= 6):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return list(chunk)

    out = run_adaptive(
        list(range(10)), work, torch.device("cuda"), batch_size=8, on_fallback=lambda d: moved.append(d.type)
    )
    assert [i for chunk in out for i in chunk] == list(range(10))
    assert calls[:3] == [(8, "cuda"), (4, "cuda"), (2, "cuda")]
    assert moved == ["cpu"] and calls[-1][1] == "cpu"


def test_other_errors_are_not_swallowed() -> None:
    def work(chunk, device):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_adaptive([0, 1], work, torch.device("cuda"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "lrp"}, "unknown attribution method 'lrp'.*saliency"),
        ({"target": "logits"}, "unknown attribution target 'logits'.*predicted"),
        ({"target": "mask"}, "needs a ground-truth mask"),
        ({"method": "integrated_gradients", "params": {"stepz": 3}}, r"unknown parameter\(s\) \['stepz'\]"),
        ({"method": "smoothgrad", "params": {"samples": 0}}, "samples=0"),
    ],
)
def test_bad_arguments_raise_input_error(stack: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        run(toy_net(0), stack, **kwargs)


def test_registries_and_defaults_are_recorded() -> None:
    assert set(METHODS) == {
        "saliency",
        "gradient",
        "input_x_gradient",
        "integrated_gradients",
        "smoothgrad",
        "occlusion",
    }
    assert set(TARGETS) == {"predicted", "mask", "all", "abs"}
    assert resolve_params("integrated_gradients", {"steps": "8"}) == {"baseline": 0.0, "steps": 8}
    assert resolve_params("integrated_gradients", None)["steps"] == 50


def test_gradient_matches_hand_computed_value() -> None:
    """A 1x1 linear network: ∂(Σ logits)/∂x_c = w_c at every pixel, so masses are |w_c|·H·W."""
    net = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        net.weight[:] = torch.tensor([0.5, -0.25, 0.25]).view(1, 3, 1, 1)
    stack = np.ones((3, 32, 32), dtype=np.float32)
    result = attribute(prepare_model(net, CPU), stack, OFFSETS, method="gradient", target="all")
    np.testing.assert_allclose(result.masses, np.tile([0.5 * 1024, 0.25 * 1024, 0.25 * 1024], (3, 1)), rtol=1e-6)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so folding falls back to Sequential pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = toy_net(7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if float(x.sum()) > -1e9 else -self.body(x)


def test_bn_folding_falls_back_for_untraceable_models_without_touching_the_original() -> None:
    model = Untraceable().train()
    prepared = prepare_model(model, CPU)
    assert model.training and isinstance(model.body[1], nn.BatchNorm2d) and model.body[0].weight.requires_grad
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.modules()) and not prepared.training
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), model.eval()(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("constant", [0.5 * 3, 0.25 * 2, 0.25 * 1]),  # ΔT_c = w_c Σ x_c (baseline 0), per pixel
        ("centre", [0.5 * (3 - 2), 0.0, 0.25 * (1 - 2)]),  # ΔT_c = w_c Σ (x_c − x_centre)
        ("other", [0.5 * (3 - 1), 0.0, 0.25 * (1 - 3)]),  # ΔT_c = w_c Σ (x_c − x_mirror)
        ("mean", [0.0, 0.0, 0.0]),  # constant slices equal their own mean
    ],
)
def test_occlusion_baselines_known_answers(replace: str, expected: list[float]) -> None:
    """A 1x1 linear network on constant slices 3, 2, 1: occluding channel c changes Σ logits by w_c Σ(x_c − b_c)."""
    net = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        net.weight[:] = torch.tensor([0.5, 0.25, 0.25]).view(1, 3, 1, 1)
    stack = np.stack([np.full((32, 32), v, np.float32) for v in (3.0, 2.0, 1.0)])
    result = attribute(
        prepare_model(net, CPU),
        stack,
        OFFSETS,
        method="occlusion",
        target="all",
        params={"replace": replace},
        slices=[1],
    )  # slice 1's window holds 3, 2, 1
    np.testing.assert_allclose(result.masses[1], np.abs(expected) * 1024, rtol=1e-5, atol=1e-3)


def test_blurred_baseline_keeps_coarse_content() -> None:
    x = torch.zeros(1, 3, 33, 33)
    x[..., 16, 16] = 1.0
    blurred = occlusion_baselines(x, "blur", 0.0, 2.0)
    assert blurred.shape == x.shape and abs(float(blurred.sum()) - 3.0) < 1e-4  # mass kept, spread out
    assert float(blurred.max()) < 0.1
    with pytest.raises(InputError, match="unknown occlusion baseline 'zero'"):
        resolve_params("occlusion", {"replace": "zero"})


def test_method_diagnostics_are_recorded_per_slice(stack: np.ndarray) -> None:
    """IG's |convergence delta| shrinks with more steps; SmoothGrad's σ is sigma × each window's range."""
    model = toy_net(2)
    coarse = run(model, stack, method="integrated_gradients", target="all", params={"steps": 2})
    fine = run(model, stack, method="integrated_gradients", target="all", params={"steps": 64})
    assert coarse.info["convergence_delta"].shape == (7,) and np.isfinite(coarse.info["convergence_delta"]).all()
    assert fine.info["convergence_delta"].mean() < coarse.info["convergence_delta"].mean()
    noisy = run(model, stack, method="smoothgrad", target="all", params={"samples": 2, "sigma": 0.1})
    windows = stack[np.clip(np.arange(7)[:, None] + np.array(OFFSETS), 0, 6)]  # (S, C, H, W), unpadded
    span = windows.reshape(7, -1).max(1) - windows.reshape(7, -1).min(1)
    np.testing.assert_allclose(noisy.info["noise_sigma"], 0.1 * span, rtol=1e-5)
    assert run(model, stack, method="saliency", target="all").info == {}
