"""Property-based tests (hypothesis): windows, padding/cropping and the statistics hold for any input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_windows import make_windows  # the reference windows, defined once

from explorer.attribution.windows import iter_windows, pad_to_multiple, padding_for, window_indices
from explorer.stats.scan import asymmetry_index, mean_ci, model_summary, shares_from_masses

FAST = settings(max_examples=60, deadline=None, derandomize=True)  # the same examples in every run
offsets_st = st.integers(1, 3).map(lambda k: tuple(range(-k, k + 1)))
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@st.composite
def stacks(draw, max_slices: int = 7, max_side: int = 40) -> np.ndarray:
    shape = (draw(st.integers(1, max_slices)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    return draw(arrays(np.float32, shape, elements=finite))


@st.composite
def masses(draw) -> tuple[np.ndarray, tuple[int, ...]]:
    offsets = draw(offsets_st)
    rows = draw(st.integers(1, 12))
    mass = st.one_of(st.just(0.0), st.floats(1e-30, 1e6))  # a channel's mass: none, or far from underflow
    values = draw(arrays(np.float64, (rows, len(offsets)), elements=mass))
    return values, offsets


# --------------------------------------------------------------------------------------------- windows


@FAST
@given(n=st.integers(1, 30), offsets=offsets_st)
def test_window_indices_are_clipped_neighbours(n: int, offsets: tuple[int, ...]) -> None:
    idx = window_indices(n, offsets)
    assert idx.shape == (n, len(offsets)) and idx.min() >= 0 and idx.max() <= n - 1
    centre = len(offsets) // 2
    assert np.array_equal(idx[:, centre], np.arange(n))  # the centre channel is the slice itself
    assert (np.diff(idx, axis=1) >= 0).all()  # channels run from the lower neighbour to the upper
    for z in range(n):
        for i, o in enumerate(offsets):
            if 0 <= z + o < n:
                assert idx[z, i] == z + o  # inside the volume: exactly the neighbour
            else:
                assert idx[z, i] == (0 if z + o < 0 else n - 1)  # outside: edge-replicated


@FAST
@given(stack=stacks(), offsets=offsets_st, batch=st.integers(1, 5))
def test_batched_windows_crop_back_to_the_windows(stack: np.ndarray, offsets: tuple[int, ...], batch: int) -> None:
    reference = make_windows(stack, offsets)
    seen = []
    for b in iter_windows(stack, offsets, batch_size=batch):
        assert b.x.shape[-2] % 32 == 0 and b.x.shape[-1] % 32 == 0 and len(b.slices) <= batch
        np.testing.assert_array_equal(b.padding.crop(b.x.numpy()), reference[b.slices])
        seen.extend(b.slices.tolist())
    assert seen == list(range(stack.shape[0]))


@FAST
@given(stack=stacks(), offsets=offsets_st)
def test_reversing_the_offsets_reverses_the_channels(stack: np.ndarray, offsets: tuple[int, ...]) -> None:
    """The z-flip test relies on it: a window's channels reversed = the window of the z-reversed stack."""
    flipped = make_windows(stack[::-1], offsets)[::-1]
    np.testing.assert_array_equal(make_windows(stack, offsets)[:, ::-1], flipped)


@FAST
@given(
    x=arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 70), st.integers(1, 70)), elements=finite),
    multiple=st.sampled_from([1, 8, 32]),
    value=finite,
)
def test_padding_is_minimal_symmetric_and_undone_by_crop(x: np.ndarray, multiple: int, value: float) -> None:
    padded, pad = pad_to_multiple(x, multiple, value)
    h, w = x.shape[-2:]
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple  # never a whole extra block
    assert 0 <= pad.bottom - pad.top <= 1 and 0 <= pad.right - pad.left <= 1
    np.testing.assert_array_equal(pad.crop(padded), x)
    border = np.ones(padded.shape, bool)
    border[..., pad.top : pad.top + h, pad.left : pad.left + w] = False
    assert (padded[border] == np.float32(value)).all()
    assert padding_for(h, w, multiple) == pad


# --------------------------------------------------------------------------------------------- statistics


@FAST
@given(data=masses())
def test_shares_lie_in_unit_interval_and_sum_to_one(data) -> None:
    m, _ = data
    s = shares_from_masses(m)
    valid = m.sum(axis=1) > 0
    assert np.isnan(s[~valid]).all()  # nothing to share: the slice is skipped, not invented
    assert ((s[valid] >= 0) & (s[valid] <= 1)).all()
    np.testing.assert_allclose(s[valid].sum(axis=1), 1.0, rtol=1e-12)


@FAST
@given(data=masses(), scale=st.floats(1e-3, 1e3))
def test_shares_ignore_the_scale_of_the_masses(data, scale: float) -> None:
    m, _ = data
    np.testing.assert_allclose(shares_from_masses(m * scale), shares_from_masses(m), rtol=1e-9, equal_nan=True)


@FAST
@given(data=masses())
def test_asymmetry_index_is_bounded_and_mirrors_under_reversed_offsets(data) -> None:
    m, offsets = data
    s = shares_from_masses(m)
    for k in range(1, max(offsets) + 1):
        ai = asymmetry_index(s, offsets, k)
        finite_ai = ai[np.isfinite(ai)]
        assert ((finite_ai >= -1) & (finite_ai <= 1)).all()
        mirrored = asymmetry_index(s[:, ::-1], offsets, k)  # channel -k now holds what +k held
        np.testing.assert_allclose(mirrored, -ai, equal_nan=True, atol=1e-12)


@settings(max_examples=20, deadline=None, derandomize=True)  # bootstrap CIs make each example cost ~0.1 s
@given(data=masses())
def test_summary_of_mirrored_masses_mirrors_mean_share_and_ai(data) -> None:
    m, offsets = data
    a, b = model_summary(m, offsets), model_summary(m[:, ::-1], offsets)
    for o in offsets:
        mine, theirs = a["mean_share"][str(o)], b["mean_share"][str(-o)]
        assert (mine is None and theirs is None) or np.isclose(mine, theirs, atol=1e-12)
    ai_a, ai_b = a["asymmetry_index"]["mean"], b["asymmetry_index"]["mean"]
    assert (ai_a is None and ai_b is None) or np.isclose(ai_a, -ai_b, atol=1e-12)
    p_a, p_b = a["asymmetry_index"]["p"], b["asymmetry_index"]["p"]  # the sign-flip test is symmetric in the sign
    assert (p_a is None and p_b is None) or np.isclose(p_a, p_b)
    w_a, w_b = a["asymmetry_index"]["mass_weighted"], b["asymmetry_index"]["mass_weighted"]
    assert (w_a is None and w_b is None) or np.isclose(w_a, -w_b, atol=1e-12)


@FAST
@given(values=arrays(np.float64, st.integers(1, 30), elements=st.floats(-1, 1, allow_nan=False)))
def test_mean_ci_contains_the_mean(values: np.ndarray) -> None:
    mean, (lo, hi) = mean_ci(values, n_resamples=200)
    assert np.isclose(mean, values.mean())
    assert lo - 1e-12 <= mean <= hi + 1e-12 and -1 - 1e-12 <= lo and hi <= 1 + 1e-12
