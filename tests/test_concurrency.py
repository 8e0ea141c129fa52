"""Several sessions at once: separate, correct results, and shared checkpoints and models never mutated.

The app shares loaded checkpoints between browser sessions (``st.cache_resource``) and one result cache per
process; these tests run analyses in parallel threads on shared :class:`Checkpoint` objects and a shared
:class:`ResultCache`, and compare every result with the same analysis run alone.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from enginetools import attribute

from explorer.analysis import Analysis, analyze
from explorer.attribution.fastpath import prepare_model
from explorer.cache.store import ResultCache
from explorer.io.normalise import normalise
from explorer.io.volume import Volume, load_volume
from explorer.models.checkpoints import Checkpoint, list_zoo, load_checkpoint
from explorer.spec import RunSpec


@pytest.fixture(scope="module")
def volumes(sample_volume_path: Path) -> tuple[Volume, Volume]:
    """Two different volumes: a crop of the sample, and another crop flipped left-right."""
    img = nib.load(sample_volume_path)
    a = img.slicer[14:62, 20:76, 34:42]
    b = img.slicer[20:60, 30:80, 44:50]
    data_b = np.ascontiguousarray(np.asanyarray(b.dataobj)[::-1]).astype(np.float32)
    raw_a = nib.Nifti1Image(np.asanyarray(a.dataobj).astype(np.float32), a.affine).to_bytes()
    raw_b = nib.Nifti1Image(data_b, b.affine).to_bytes()
    return load_volume(raw_a, name="crop-a.nii"), load_volume(raw_b, name="crop-b-flipped.nii")


@pytest.fixture(scope="module")
def zoo() -> dict[str, Checkpoint]:
    """The shipped checkpoints, loaded once and shared by every session (as the app does)."""
    return {c.meta.strategy: c for c in (load_checkpoint(p) for p in list_zoo())}


def _digest(ckpt: Checkpoint) -> str:
    h = hashlib.sha256()
    for key in sorted(ckpt.state_dict):
        h.update(key.encode())
        h.update(ckpt.state_dict[key].detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _jobs(volumes, zoo) -> list[dict]:
    a, b = volumes
    return [  # captum methods (hooks, several forwards) and a gradient method, on different volumes and models
        dict(study=a, checkpoints=[zoo["imagenet"], zoo["random"]], spec=RunSpec(method="occlusion", target="all")),
        dict(
            study=b,
            checkpoints=[zoo["imagenet-uniform"], zoo["imagenet"]],
            spec=RunSpec(method="integrated_gradients", target="all", params={"steps": 4}),
        ),
        dict(study=b, checkpoints=[zoo["imagenet-zflip"]], spec=RunSpec(method="saliency", target="predicted")),
    ]


def _same(parallel: Analysis, alone: Analysis) -> None:
    assert parallel.volume.sha256 == alone.volume.sha256 and list(parallel.models) == list(alone.models)
    for name, model in alone.models.items():
        other = parallel.models[name]
        assert other.checkpoint_sha256 == model.checkpoint_sha256
        np.testing.assert_allclose(other.masses, model.masses, rtol=1e-5, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(other.prediction, model.prediction)
    assert parallel.summary["inputs"] == alone.summary["inputs"]


def test_parallel_sessions_match_sequential_runs(volumes, zoo, tmp_path: Path) -> None:
    jobs = _jobs(volumes, zoo)
    before = {name: _digest(c) for name, c in zoo.items()}
    alone = [analyze(**job, cache=False) for job in jobs]

    shared = ResultCache(tmp_path / "cache")  # one process-wide cache, as in the app
    runs = jobs + jobs[:1]  # the first job twice at once: two writers of the same cache entry
    results: list[Analysis | BaseException | None] = [None] * len(runs)
    start = threading.Barrier(len(runs))

    def session(i: int) -> None:
        try:
            start.wait()
            results[i] = analyze(**runs[i], cache=shared)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            results[i] = exc

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    for i, result in enumerate(results):
        assert isinstance(result, Analysis), result
        _same(result, alone[i % len(jobs)])
    assert {name: _digest(c) for name, c in zoo.items()} == before, "a run changed a shared checkpoint"
    assert not list((tmp_path / "cache").rglob(".*")), "a temporary cache folder was left behind"
    again = [analyze(**job, cache=shared) for job in jobs]  # now from the cache: still the same numbers
    for result, reference in zip(again, alone, strict=False):
        _same(result, reference)


def test_cached_arrays_shared_between_sessions_are_read_only(volumes, zoo) -> None:
    cache = ResultCache(disk=False)
    job = dict(study=volumes[0], checkpoints=[zoo["random"]], spec=RunSpec(target="all", zflip=False))
    first, second = analyze(**job, cache=cache), analyze(**job, cache=cache)
    masses = second.models["unet-mobilenet_v2-random-s0"].masses
    assert masses is first.models["unet-mobilenet_v2-random-s0"].masses  # one entry, shared
    with pytest.raises(ValueError, match="read-only"):
        masses[0, 0] = 1.0


@pytest.mark.parametrize("method", ["occlusion", "integrated_gradients", "smoothgrad", "saliency"])
def test_attribution_never_touches_the_models_it_is_given(method: str, volumes, zoo) -> None:
    """captum adds hooks and perturbs inputs: it works on a prepared copy, never on the shared module."""
    model = zoo["imagenet"].build_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {k: p.requires_grad for k, p in model.named_parameters()}
    prepared = prepare_model(model, torch.device("cpu"))
    stack = volumes[0].stack("axial", normalise(volumes[0].data))
    params = {"steps": 2} if method == "integrated_gradients" else {"samples": 2} if method == "smoothgrad" else {}
    attribute(prepared, stack[:3], (-1, 0, 1), method=method, target="all", params=params)
    for module in (*model.modules(), *prepared.modules()):
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks), module
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert {k: p.requires_grad for k, p in model.named_parameters()} == grads
    assert model.training is False and all(p.grad is None for p in model.parameters())
