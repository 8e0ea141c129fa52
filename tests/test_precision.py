"""Reduced precision (autocast): how far the mean shares and the asymmetry index move from float32.

The criterion for ``--precision auto`` to choose reduced precision is 1e-3 (:func:`explorer.device.resolve_precision`).
bfloat16 on this CPU stays within 2e-3 but not within 1e-3 on the sample (and moves the mean shares by 5.7e-3 on
the 1 mm MNI152 template: docs/performance.md), so ``auto`` keeps float32; these tests pin both facts, with
saliency (measured so in docs/performance.md; occlusion's AI moved by 2.5e-3 in bfloat16, another reason ``auto``
stays float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import analyze
from explorer.device import resolve_precision
from explorer.errors import InputError
from explorer.io.volume import load_volume
from explorer.models.checkpoints import list_zoo, load_checkpoint
from explorer.spec import RunSpec
from explorer.stats.scan import asymmetry_index, shares_from_masses

TOLERANCE = 2e-3  # what bfloat16 holds; the criterion for `auto` (1e-3) is not met


@pytest.fixture(scope="module")
def imagenet():
    return next(c for c in map(load_checkpoint, list_zoo()) if c.meta.strategy == "imagenet")


def _shares_and_ai(volume, checkpoint, precision: str) -> tuple[np.ndarray, float]:
    spec = RunSpec(method="saliency", device="cpu", precision=precision, zflip=False)
    result = analyze(volume, [checkpoint], spec, cache=False)
    model = next(iter(result.models.values()))
    assert result.spec.precision == precision
    shares = shares_from_masses(model.masses)
    return shares, float(np.nanmean(asymmetry_index(shares, model.offsets)))


def _compare(volume, checkpoint) -> None:
    s32, ai32 = _shares_and_ai(volume, checkpoint, "float32")
    s16, ai16 = _shares_and_ai(volume, checkpoint, "bfloat16")
    both = np.isfinite(s32).all(1) & np.isfinite(s16).all(1)
    assert both.sum() > 0.9 * np.isfinite(s32).all(1).sum()  # the target's pixels barely change
    # The reported numbers: the mean share per offset and the mean asymmetry index. (Single slices differ by
    # a few 1e-3: bfloat16 keeps 8 bits of mantissa; the errors average out over slices.)
    assert np.abs(np.mean(s32[both], 0) - np.mean(s16[both], 0)).max() < TOLERANCE
    assert abs(ai32 - ai16) < TOLERANCE


@pytest.mark.slow
def test_bfloat16_stays_within_2e3_of_float32_on_the_sample(sample_volume_path, imagenet) -> None:
    _compare(load_volume(sample_volume_path), imagenet)


def test_precision_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32"
    assert resolve_precision("auto", cpu) == "float32"  # bfloat16 misses 1e-3 (see the module docstring)
    with pytest.raises(InputError, match="float16 on the CPU"):
        resolve_precision("float16", cpu)
    with pytest.raises(InputError, match="unknown precision 'half'"):
        resolve_precision("half", cpu)
