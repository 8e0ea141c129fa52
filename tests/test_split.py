"""Known answers of the channel/anatomy split (docs/definitions.md, "The channel/anatomy split").

- A network exactly invariant to swapping its neighbours (``f∘R = f``: the first conv's kernels of offsets −1
  and +1 made equal; nothing after the first conv sees the channels) has channel asymmetry 0 under every
  method, whatever the scan.
- A scan with ``x_{z−1} = x_{z+1}`` has anatomy asymmetry 0 for every network, whatever its bias.
Both are exact identities up to float32 summation order, so the tolerance is 1e-3 on values in [−1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pytest
import torch
from enginetools import attribute
from torch import nn

from explorer.analysis import analyze
from explorer.attribution.fastpath import prepare_model
from explorer.attribution.methods import METHODS, OCCLUSION_BASELINES
from explorer.config import REPO_ROOT
from explorer.debias import surgery
from explorer.io.normalise import channel_stats_for
from explorer.models.checkpoints import Checkpoint, load_checkpoint
from explorer.spec import RunSpec
from explorer.stats.scan import split_asymmetry
from explorer.study import Study

CPU = torch.device("cpu")
IMAGENET = REPO_ROOT / "models" / "unet-mobilenet_v2-imagenet-s0.safetensors"
SLICES = [20, 33, 45, 58]
#: Every method with cheap settings, occlusion under each of its baselines.
CASES = (
    [(m, {}) for m in METHODS if m not in ("occlusion", "integrated_gradients", "smoothgrad")]
    + [("integrated_gradients", {"steps": 4}), ("smoothgrad", {"samples": 2})]
    + [("occlusion", {"replace": r}) for r in OCCLUSION_BASELINES]
)


def symmetrised(ckpt: Checkpoint) -> Checkpoint:
    """``ckpt`` after ``explorer debias``' symmetric surgery: kernels of offsets −k and +k set to their mean."""
    return surgery(ckpt, "symmetric", name=ckpt.name + "-symmetrised")


@dataclass(frozen=True)
class Prepared:
    """A checkpoint and its prepared (BN-folded) model, made once per module: attribution never changes the
    model it is given (tests/test_concurrency.py), so the cases can share it."""

    checkpoint: Checkpoint
    model: nn.Module


@pytest.fixture(scope="module")
def imagenet() -> Prepared:
    ckpt = load_checkpoint(IMAGENET)
    return Prepared(ckpt, prepare_model(ckpt.build_model(CPU), CPU))


@pytest.fixture(scope="module")
def symmetric(imagenet: Prepared) -> Prepared:
    ckpt = symmetrised(imagenet.checkpoint)
    return Prepared(ckpt, prepare_model(ckpt.build_model(CPU), CPU))


def _split(prepared: Prepared, stack: np.ndarray, method: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    ckpt, model = prepared.checkpoint, prepared.model
    offsets = ckpt.meta.offsets
    run = dict(
        method=method,
        params=params,
        target="predicted",
        slices=SLICES,
        channel_stats=channel_stats_for(ckpt.meta.normalisation, len(offsets)),
    )
    plain = attribute(model, stack, offsets, **run)
    flipped = attribute(model, stack, offsets, reverse=True, **run)
    channel, anatomy = split_asymmetry(plain.masses, flipped.masses, offsets)
    return channel[SLICES], anatomy[SLICES]


@pytest.fixture(scope="module")
def sample_stack(sample_volume_path, imagenet: Prepared) -> np.ndarray:
    return Study.load(sample_volume_path).slices("axial", imagenet.checkpoint.meta.normalisation)


@pytest.mark.parametrize("method, params", CASES, ids=[f"{m}-{p.get('replace', '')}" for m, p in CASES])
def test_symmetric_network_has_no_channel_asymmetry_under_every_method(sample_stack, symmetric, method, params) -> None:
    channel, anatomy = _split(symmetric, sample_stack, method, params)
    assert np.isfinite(channel).all()
    assert np.abs(channel).max() < 1e-3, channel
    if method == "occlusion" and params["replace"] == "mean":
        assert np.abs(anatomy).max() > 1e-2, "the scan's own asymmetry is still measured"


def test_the_unsymmetrised_network_does_show_channel_asymmetry(sample_stack, imagenet) -> None:
    """The check above can fail: the same slices through the ImageNet network itself are not symmetric."""
    channel, _ = _split(imagenet, sample_stack, "occlusion", {"replace": "mean"})
    assert np.abs(channel).max() > 1e-2


def test_z_symmetric_scan_has_no_anatomy_asymmetry(sample_stack, imagenet) -> None:
    """Slices alternating A, B, A, B…: every interior window has ``x_{z−1} = x_{z+1}``; the ImageNet network
    still prefers a channel, and that preference is all channel asymmetry."""
    alternating = np.stack([sample_stack[45 + (z % 2)] for z in range(len(sample_stack))])
    for method, params in [("occlusion", {"replace": "mean"}), ("saliency", {})]:
        channel, anatomy = _split(imagenet, alternating, method, params)
        assert np.abs(anatomy).max() < 1e-3, (method, anatomy)
        assert np.abs(channel).max() > 1e-2, (method, channel)


def test_analyze_reports_the_split_with_its_known_answers(tmp_path, sample_volume_path) -> None:
    """Through ``analyze`` with the default method: a symmetrised network's ``channel_asymmetry`` and a
    z-constant scan's ``anatomy_asymmetry`` are 0 in ``summary.json`` and in every row of the shares table;
    ``--no-reverse`` records the split as skipped."""
    source = nib.load(sample_volume_path)
    data = np.asarray(source.dataobj, dtype=np.float32)[:, :, 36:52]  # 16 axial slices keep the test short
    constant = np.repeat(data[:, :, 9:10], data.shape[2], axis=2)  # x_{z−1} = x_z = x_{z+1} everywhere
    nib.save(nib.Nifti1Image(data, source.affine), tmp_path / "crop.nii.gz")
    nib.save(nib.Nifti1Image(constant, source.affine), tmp_path / "constant.nii.gz")
    ckpt = load_checkpoint(IMAGENET)
    result = analyze(tmp_path / "crop.nii.gz", [symmetrised(ckpt)], cache=False)
    entry = result.summary["models"][ckpt.name + "-symmetrised"]
    assert entry["split"] == "computed"
    assert abs(entry["channel_asymmetry"]["mean"]) < 1e-3
    assert result.shares["channel_asymmetry"].abs().max() < 1e-3
    assert entry["channel_asymmetry"]["n_slices"] == entry["n_slices"]
    result = analyze(tmp_path / "constant.nii.gz", [ckpt], cache=False)
    entry = result.summary["models"][ckpt.name]
    assert abs(entry["anatomy_asymmetry"]["mean"]) < 1e-3
    assert result.shares["anatomy_asymmetry"].abs().max() < 1e-3
    assert abs(entry["channel_asymmetry"]["mean"] - entry["asymmetry_index"]["mean"]) < 1e-3
    skipped = analyze(tmp_path / "constant.nii.gz", [ckpt], RunSpec(zflip=False), cache=False)
    entry = skipped.summary["models"][ckpt.name]
    assert entry["channel_asymmetry"] is None and entry["split"].startswith("skipped")
    assert skipped.shares["channel_asymmetry"].isna().all()
