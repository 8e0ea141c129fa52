"""Background attention (Bassi et al., arXiv 2401.08409, ISNet): the share of attribution outside the object.

Shapes: attribution maps ``(S, C, H, W)`` (channel ``i`` = offset ``offsets[i]``), foreground ``(S, H, W)``
bool (the ground-truth mask when given, else the model's prediction). The result is ``(S, C + 1)``: column
``i`` the fraction of channel ``i``'s mass ``Σ|A|`` outside the (optionally dilated) foreground, the last
column the same over all channels together. A slice is NaN where the attribution was skipped (its target was
empty), its mass is zero, or its foreground is empty (no object to be outside of).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["dilate", "background_fractions", "background_summary"]


def dilate(foreground: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate every slice of ``foreground`` ``(S, H, W)`` in-plane by ``pixels`` (4-connected steps).

    Raises:
        InputError: a negative dilation.
    """
    if pixels < 0:
        raise InputError("--dilation", f"{pixels}", "a dilation of 0 or more pixels")
    if pixels == 0:
        return foreground.astype(bool)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # in-plane only: slices never bleed into each other
    return ndimage.binary_dilation(foreground.astype(bool), structure=structure, iterations=pixels)


def background_fractions(maps: np.ndarray, foreground: np.ndarray, *, dilation: int = 0, batch: int = 16) -> np.ndarray:
    """Fraction of attribution mass outside the foreground, per slice and channel, and in total.

    Args:
        maps: attributions ``(S, C, H, W)`` (any float dtype; NaN-free; a memmap is read in batches).
        foreground: ``(S, H, W)`` bool object pixels.
        dilation: grow the foreground by this many pixels first (so edge attribution counts as inside).
        batch: slices read at a time.

    Returns:
        ``(S, C + 1)`` float64 fractions in ``[0, 1]`` (NaN for undefined slices, see the module docstring).

    Raises:
        InputError: mismatched shapes or a negative dilation.
    """
    if maps.ndim != 4 or foreground.shape != (maps.shape[0], *maps.shape[2:]):
        raise InputError(
            "maps", f"maps {maps.shape} and foreground {foreground.shape}", "maps (S, C, H, W) and foreground (S, H, W)"
        )
    inside = dilate(foreground, dilation)
    out = np.full((maps.shape[0], maps.shape[1] + 1), np.nan)
    for start in range(0, maps.shape[0], batch):
        a = np.abs(np.asarray(maps[start : start + batch], dtype=np.float64))
        fg = inside[start : start + batch, None]
        total = a.sum(axis=(2, 3))
        outside = np.where(fg, 0.0, a).sum(axis=(2, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.concatenate(
                [outside / total, outside.sum(1, keepdims=True) / total.sum(1, keepdims=True)], axis=1
            )
        frac[~np.isfinite(frac)] = np.nan
        frac[~fg[:, 0].any(axis=(1, 2))] = np.nan
        out[start : start + batch] = frac
    return out


def background_summary(fractions: np.ndarray, offsets: tuple[int, ...], *, source: str, dilation: int) -> dict:
    """The summary block: mean fraction per offset and in total over the defined slices.

    Args:
        fractions: the output of :func:`background_fractions`.
        offsets: the model's offsets (column order).
        source: ``mask`` or ``prediction`` (what the foreground was).
        dilation: the dilation used.

    Returns:
        ``{"foreground": source, "dilation", "slices", "mean_fraction": {offset: v, "total": v}}``.
    """
    rows = np.isfinite(fractions).all(axis=1)
    means = fractions[rows].mean(axis=0) if rows.any() else np.full(fractions.shape[1], np.nan)
    mean = {str(o): float(v) for o, v in zip(offsets, means[:-1], strict=False)}
    mean["total"] = float(means[-1])
    return {"foreground": source, "dilation": int(dilation), "slices": int(rows.sum()), "mean_fraction": mean}
