"""The inputs of an analysis as one object: a volume and, optionally, its ground-truth mask.

In the spirit of TorchIO's ``Subject``: the parts are checked to agree when the study is built, carry their
content hashes (cache keys, output records), and yield the normalised slice stack every consumer needs
(attribution, diagnostics, training) from one method.

Shapes: :meth:`Study.slices` is ``(S, H, W)`` float32 along the slicing axis (canonical order);
:meth:`Study.mask_slices` the matching ``(S, H, W)`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io.normalise import normalise
from .io.volume import Mask, Volume, load_mask, load_volume

__all__ = ["Study"]


@dataclass(frozen=True, eq=False)
class Study:
    """A volume and its optional mask, validated to share one grid.

    Raises:
        InputError: a mask whose shape differs from the volume's.
    """

    volume: Volume
    mask: Mask | None = None

    def __post_init__(self) -> None:
        if self.mask is not None and self.mask.data.shape != self.volume.shape:
            raise InputError(
                self.mask.source,
                f"mask has shape {self.mask.data.shape} but the volume has {self.volume.shape}",
                "a mask on the volume's grid",
            )

    @classmethod
    def load(cls, volume: Volume | str | Path, mask: Mask | str | Path | None = None) -> Study:
        """A study from loaded objects or paths (the mask is checked against the volume's grid).

        Raises:
            InputError: as :func:`explorer.io.volume.load_volume` and :func:`explorer.io.volume.load_mask`.
        """
        vol = volume if isinstance(volume, Volume) else load_volume(volume)
        truth = mask if isinstance(mask, Mask) or mask is None else load_mask(mask, vol)
        return cls(vol, truth)

    def slices(self, axis: str, normalisation: str) -> np.ndarray:
        """The volume normalised with the preset ``normalisation`` and sliced along ``axis``."""
        return self.volume.stack(axis, normalise(self.volume.data, normalisation))

    def mask_slices(self, axis: str) -> np.ndarray | None:
        """The mask sliced along ``axis``, or None without a mask."""
        return self.mask.stack(axis) if self.mask is not None else None

    def key(self) -> dict[str, str | None]:
        """Content hashes of the parts (for cache keys)."""
        return {"volume": self.volume.sha256, "mask": self.mask.sha256 if self.mask is not None else None}

    def record(self) -> dict[str, Any]:
        """JSON-ready description of the inputs (``summary.json``'s ``inputs``)."""
        return {
            "volume": {"source": self.volume.source, "sha256": self.volume.sha256, "shape": list(self.volume.shape)},
            "mask": {"source": self.mask.source, "sha256": self.mask.sha256} if self.mask is not None else None,
        }
