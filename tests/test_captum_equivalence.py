"""The batched fast path equals captum's reference implementations, and no target includes padded pixels.

The fast path runs a BN-folded, channels-last copy of the model (``explorer.attribution.fastpath.prepare_model``) on a
whole batch; the reference is captum on the raw checkpoint, with a forward wrapper that returns each
sample's target (the same pixel selection). BN folding changes the numerics in the last bits only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from enginetools import attribute

from explorer.attribution.fastpath import prepare_model
from explorer.attribution.methods import explain_batch, foreground_logit, occlusion_baselines, valid_region
from explorer.attribution.windows import Padding, iter_windows, padding_for
from explorer.io.normalise import channel_stats_for
from explorer.models.checkpoints import list_zoo, load_checkpoint
from explorer.spec import RunSpec
from explorer.stats.scan import shares_from_masses
from explorer.study import Study

SLICES = [30, 45, 60]
IG_STEPS = 16  # integrated gradients' steps, in the fast path and in captum alike
SG_SAMPLES = 4  # SmoothGrad's noisy copies, likewise
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(sample_volume_path):
    ckpt = load_checkpoint(next(p for p in list_zoo() if "-imagenet-s" in p.name or p.stem.endswith("-imagenet")))
    stack = Study.load(sample_volume_path).slices("axial", ckpt.meta.normalisation)
    (batch,) = iter_windows(
        stack,
        ckpt.meta.offsets,
        batch_size=len(SLICES),
        slices=SLICES,
        channel_stats=channel_stats_for(ckpt.meta.normalisation, len(ckpt.meta.offsets)),
    )
    raw = ckpt.build_model("cpu").eval()
    return ckpt, stack, batch, raw, prepare_model(ckpt.build_model("cpu"), CPU)


def _shares(attr: torch.Tensor, padding: Padding) -> np.ndarray:
    return shares_from_masses(padding.crop(attr).abs().sum(dim=(2, 3)).double().detach().numpy())


def _fast(setup, method: str, params: dict | None = None):
    ckpt, _, batch, _, prepared = setup
    return explain_batch(
        prepared,
        batch.x,
        RunSpec(method=method, params=params or {}),
        slices=tuple(int(z) for z in batch.slices),
        padding=batch.padding,
    )


def _reference_forward(raw):
    """``(x, selection) -> (B,)``: each sample's target (captum expands ``selection`` with ``x``)."""
    return lambda x, selection: (foreground_logit(raw(x), x) * selection).flatten(1).sum(1)


@pytest.mark.parametrize("method, reference", [("saliency", Saliency), ("input_x_gradient", InputXGradient)])
def test_gradient_methods_equal_captum(setup, method, reference) -> None:
    _, _, batch, raw, _ = setup
    fast = _fast(setup, method)
    extra = {"abs": True} if method == "saliency" else {}
    ref = reference(_reference_forward(raw)).attribute(
        batch.x.clone(), additional_forward_args=(fast.selection,), **extra
    )
    np.testing.assert_allclose(_shares(fast.attr, batch.padding), _shares(ref, batch.padding), atol=1e-4)


@pytest.mark.parametrize("replace", ["mean", "other", "constant", "centre"])
def test_occlusion_equals_captum_feature_ablation(setup, replace: str) -> None:
    """The hand-batched ablation (one shared unperturbed forward, unchanged channels skipped) gives captum's
    ``FeatureAblation`` deltas, channel by channel, as masses ``|ΔT|``."""
    _, _, batch, raw, _ = setup
    fast = _fast(setup, "occlusion", {"replace": replace})
    x = batch.x.clone()
    ref = FeatureAblation(_reference_forward(raw)).attribute(
        x,
        baselines=occlusion_baselines(x, replace, 0.0, 2.0, valid_region(x, batch.padding)),
        additional_forward_args=(fast.selection,),
        feature_mask=torch.arange(x.shape[1]).view(1, -1, 1, 1),
        perturbations_per_eval=x.shape[1],
    )
    fast_mass = fast.attr.abs().sum(dim=(2, 3)).double().numpy()
    ref_delta = ref[:, :, 0, 0].abs().double().numpy()  # captum fills each channel with its ΔT
    np.testing.assert_allclose(fast_mass, ref_delta, rtol=1e-3, atol=1e-3 * ref_delta.max())
    assert (fast_mass > 0).sum() >= (2 if replace in ("other", "centre") else 3) * len(SLICES) - 1


@pytest.mark.slow  # 16 interpolation steps of 3 slices through a U-Net, twice
def test_integrated_gradients_equal_captum_and_record_the_delta(setup) -> None:
    """The same number of steps on both sides (16, not the default 50: the equivalence does not depend on it, the
    cost does)."""
    _, _, batch, raw, _ = setup
    fast = _fast(setup, "integrated_gradients", {"steps": IG_STEPS})
    ref, delta = IntegratedGradients(_reference_forward(raw)).attribute(
        batch.x.clone(),
        baselines=0.0,
        n_steps=IG_STEPS,
        additional_forward_args=(fast.selection,),
        return_convergence_delta=True,
    )
    np.testing.assert_allclose(_shares(fast.attr, batch.padding), _shares(ref, batch.padding), atol=1e-4)
    np.testing.assert_allclose(
        fast.info["convergence_delta"].numpy(),
        delta.abs().detach().numpy(),
        rtol=0.05,
        atol=1e-2 * float(delta.abs().max()) + 1e-3,
    )


@pytest.mark.slow  # 4 noisy copies per slice
def test_smoothgrad_equals_captum_noise_tunnel_with_the_same_noise(setup) -> None:
    """Per slice z the noise is drawn from a generator seeded ``seed * 100003 + z``: seeding torch's global
    generator the same way before captum's NoiseTunnel (one slice at a time) reproduces it (4 samples on both
    sides, not the default 8: more than one, so the order of the draws is checked too)."""
    _, _, batch, raw, _ = setup
    fast = _fast(setup, "smoothgrad", {"samples": SG_SAMPLES})
    valid = valid_region(batch.x, batch.padding) > 0
    for i, z in enumerate(batch.slices):
        x = batch.x[i : i + 1].clone()
        inside = x[..., valid]
        sigma = 0.15 * float(inside.max() - inside.min())
        assert float(fast.info["noise_sigma"][i]) == pytest.approx(sigma, rel=1e-6)
        torch.manual_seed(int(z))  # seed 0: 0 * 100003 + z
        tunnel = NoiseTunnel(Saliency(_reference_forward(raw)))
        ref = tunnel.attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=SG_SAMPLES,
            stdevs=sigma,
            abs=True,
            additional_forward_args=(fast.selection[i : i + 1],),
        )
        np.testing.assert_allclose(_shares(fast.attr[i : i + 1], batch.padding), _shares(ref, batch.padding), atol=1e-4)


def test_no_target_includes_padded_pixels(setup) -> None:
    _, stack, batch, _, prepared = setup
    inside = valid_region(batch.x, batch.padding)
    h, w = stack.shape[1:]
    assert batch.padding.top + batch.padding.bottom > 0 and inside.sum() == h * w
    for target in ("predicted", "all", "abs"):
        fast = explain_batch(
            prepared,
            batch.x,
            RunSpec(method="saliency", target=target),
            slices=tuple(batch.slices),
            padding=batch.padding,
        )
        assert float((fast.selection * (1 - inside)).abs().sum()) == 0.0, target
        if target != "predicted":
            assert torch.equal(fast.selection, inside.expand_as(fast.selection)), target


@pytest.mark.parametrize("target", ["all", "abs"])
def test_shares_do_not_depend_on_how_the_slice_is_padded(setup, target) -> None:
    """Padding to a multiple of 32 or of 64 puts the sample's 77×94 slice on a 96×96 or a 128×128 canvas; with the
    target restricted to the slice, the shares agree up to the network's own border effects (< 0.01)."""
    ckpt, stack, _, _, prepared = setup
    part = stack[20:75:6]
    assert padding_for(*part.shape[1:], 32) != padding_for(*part.shape[1:], 64)
    shares = [
        shares_from_masses(attribute(prepared, part, ckpt.meta.offsets, target=target, multiple=multiple).masses)
        for multiple in (32, 64)
    ]
    assert np.isfinite(shares[0]).all()
    np.testing.assert_allclose(shares[0], shares[1], atol=0.01)
