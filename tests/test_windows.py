"""2D+ windows: channel i of slice z is slice z + offsets[i] (edge-replicated); padding crops back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.attribution.windows import (
    iter_windows,
    pad_to_multiple,
    validate_offsets,
    window_indices,
)
from explorer.errors import InputError
from explorer.io.normalise import channel_stats_for


def make_windows(stack: np.ndarray, offsets, slices=None) -> np.ndarray:
    """Reference windows ``(N, C, H, W)``, unpadded: plain fancy indexing of the stack."""
    return stack[window_indices(stack.shape[0], offsets, slices)]


def _stack(n=6, h=5, w=7) -> np.ndarray:
    """Slice z is filled with z*1000 plus a pixel ramp, so the source of every channel is identifiable."""
    return np.arange(n, dtype=np.float32)[:, None, None] * 1000 + np.arange(h * w, dtype=np.float32).reshape(h, w)


@pytest.mark.parametrize("offsets", [(-1, 0, 1), (-2, -1, 0, 1, 2), (-3, 0, 3), (0,)])
def test_channel_i_is_slice_z_plus_offset_with_edge_replication(offsets):
    stack = _stack()
    n = stack.shape[0]
    windows = make_windows(stack, offsets)
    assert windows.shape == (n, len(offsets), 5, 7)
    for z in range(n):
        for i, o in enumerate(offsets):
            assert np.array_equal(windows[z, i], stack[min(max(z + o, 0), n - 1)])
    # The edges explicitly: the first slice's "previous" is itself, the last slice's "next" is itself.
    if offsets == (-1, 0, 1):
        assert np.array_equal(windows[0, 0], stack[0]) and np.array_equal(windows[-1, 2], stack[-1])


def test_iterated_batches_cover_every_slice_once_and_match_windows():
    stack = _stack(n=11, h=20, w=45)
    seen = []
    for batch in iter_windows(stack, (-1, 0, 1), batch_size=4):
        assert batch.x.dtype == torch.float32 and batch.x.shape[0] <= 4
        assert batch.x.shape[-2] % 32 == 0 and batch.x.shape[-1] % 32 == 0
        cropped = batch.padding.crop(batch.x).numpy()
        assert np.array_equal(cropped, make_windows(stack, (-1, 0, 1), batch.slices))
        # Border filled with the stack's minimum (background), not zeros.
        assert batch.x[0, 0, 0, 0].item() == stack.min()
        seen.extend(batch.slices.tolist())
    assert seen == list(range(11))


def test_iter_windows_subset_and_channel_stats():
    stack = _stack(n=5, h=32, w=32) / 5000.0
    mean, std = channel_stats_for("imagenet", 3)
    (batch,) = list(iter_windows(stack, (-1, 0, 1), batch_size=8, slices=[4, 0], channel_stats=(mean, std)))
    assert batch.slices.tolist() == [4, 0]
    expected = (make_windows(stack, (-1, 0, 1), [4, 0]) - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.allclose(batch.x.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("bad", [(-1, 1), (0, 1), (-1, 0, 2), (1, 0, -1), (-1, -1, 0, 1, 1), ("a", 0)])
def test_bad_offsets_are_rejected(bad):
    with pytest.raises(InputError, match="offsets"):
        validate_offsets(bad)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), multiple=st.sampled_from([1, 8, 32]), lead=st.integers(0, 2))
def test_pad_crop_round_trip(h, w, multiple, lead):
    x = np.random.default_rng(h * 100 + w).standard_normal((2,) * lead + (h, w)).astype(np.float32)
    padded, pad = pad_to_multiple(x, multiple, value=-3.0)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    assert abs(pad.top - pad.bottom) <= 1 and abs(pad.left - pad.right) <= 1
    assert np.array_equal(pad.crop(padded), x)
    assert np.array_equal(pad.crop(torch.from_numpy(padded)).numpy(), x)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), k=st.integers(1, 3))
def test_window_indices_stay_inside_and_are_symmetric(n, k):
    offsets = tuple(range(-k, k + 1))
    idx = window_indices(n, offsets)
    assert idx.min() >= 0 and idx.max() <= n - 1
    assert np.array_equal(idx[:, k], np.arange(n))  # the centre channel is the slice itself
    # Reversing the volume maps offset -j onto +j (the window is symmetric in z).
    rev = window_indices(n, offsets)[::-1, ::-1]
    assert np.array_equal(n - 1 - rev, idx)
