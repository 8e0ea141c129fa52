"""Typed views of one model's ``summary.json`` block: what the CLI, the cohort, the validation, the debias run
and the reports read from it, as attributes instead of string keys.

The dict stays the serialised form (``summary.json`` is written from it unchanged); these classes only read it.
The block is built by :func:`explorer.stats.scan.model_summary` (mean shares, the innermost pair's AI, counts,
bootstrap), :func:`explorer.stats.scan.split_summary` (the channel/anatomy split) and
:func:`explorer.analysis.analyze` (strategy, checkpoint hash, Dice, z-flip Dice, diagnostics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Estimate", "NO_ESTIMATE", "ModelSummary"]


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% CI and, where tested, its block sign-flip p, the minimum p the test can attain and
    the mass-weighted value (None where undefined or not computed).

    Attributes:
        mean: the mean over the slices.
        ci_low: lower end of the 95% CI.
        ci_high: upper end of the 95% CI.
        p: block sign-flip p-value.
        p_min: the smallest p the test can attain with this many blocks.
        mass_weighted: ``Σ(m₋ − m₊) / Σ(m₋ + m₊)`` over the slices.
    """

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None = None
    p_min: float | None = None
    mass_weighted: float | None = None

    @property
    def ci95(self) -> tuple[float | None, float | None]:
        """``(ci_low, ci_high)``."""
        return self.ci_low, self.ci_high

    @classmethod
    def from_block(cls, block: Mapping | None) -> Estimate | None:
        """The estimate of a summary block ``{"mean", "ci95", "p"?, "p_min"?, "mass_weighted"?, …}``.

        Args:
            block: e.g. ``entry["asymmetry_index"]`` or ``entry["channel_asymmetry"]``; None when the block was
                not computed (the split with ``--no-reverse``).

        Returns:
            The estimate, or None for a None block; keys the block lacks are None.
        """
        if block is None:
            return None
        low, high = block.get("ci95") or (None, None)
        return cls(
            mean=block.get("mean"),
            ci_low=low,
            ci_high=high,
            p=block.get("p"),
            p_min=block.get("p_min"),
            mass_weighted=block.get("mass_weighted"),
        )


NO_ESTIMATE = Estimate(None, None, None)
"""Every field None: how a row or a line that needs every column reads a split that was not computed."""


@dataclass(frozen=True)
class ModelSummary:
    """One model's statistics on one volume, read from its ``summary.json`` block.

    Attributes:
        name: the checkpoint's name in the analysis.
        strategy: its first-layer strategy (None where the block does not say).
        n_slices: slices used.
        n_skipped: slices skipped (an empty target).
        block_length: the block length of the innermost pair's bootstrap and test.
        dice: Dice of the prediction against the mask (None without a mask).
        zflip_dice: Dice of the reversed windows' prediction against the prediction (None without them).
        asymmetry_index: the innermost pair's AI.
        channel_asymmetry: the channel part of the split (None when the reversed windows were not attributed).
        anatomy_asymmetry: the anatomy part of the split (likewise).
        mean_share: offset → mean share.
        mean_share_ci95: offset → the mean share's 95% CI.
        checkpoint_sha256: the checkpoint's hash (None where the block does not say).
        raw: the block itself, for what is not typed here (diagnostics, per-pair AIs, bootstrap settings); left
            out of ``==`` and ``repr``.
    """

    name: str
    strategy: str | None
    n_slices: int
    n_skipped: int
    block_length: int
    dice: float | None
    zflip_dice: float | None
    asymmetry_index: Estimate
    channel_asymmetry: Estimate | None
    anatomy_asymmetry: Estimate | None
    mean_share: dict[int, float | None]
    mean_share_ci95: dict[int, tuple[float | None, float | None]]
    checkpoint_sha256: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any]) -> ModelSummary:
        """The typed view of ``summary["models"][name]``.

        Args:
            name: the model's name.
            entry: its block, as :func:`explorer.analysis.analyze` builds it (offset keys may be ints or JSON
                strings).

        Returns:
            The summary; ``raw`` is ``entry`` itself (not copied).

        Raises:
            KeyError: a key :func:`explorer.stats.scan.model_summary` always writes is missing.
        """
        asymmetry_index = Estimate.from_block(entry["asymmetry_index"])
        if asymmetry_index is None:
            raise KeyError("asymmetry_index")
        return cls(
            name=name,
            strategy=entry.get("strategy"),
            n_slices=entry["n_slices"],
            n_skipped=entry["n_skipped"],
            block_length=entry["bootstrap"]["block_length"],
            dice=entry.get("dice"),
            zflip_dice=entry.get("zflip_dice"),
            asymmetry_index=asymmetry_index,
            channel_asymmetry=Estimate.from_block(entry.get("channel_asymmetry")),
            anatomy_asymmetry=Estimate.from_block(entry.get("anatomy_asymmetry")),
            mean_share={int(k): v for k, v in entry["mean_share"].items()},
            mean_share_ci95={int(k): (v[0], v[1]) for k, v in (entry.get("mean_share_ci95") or {}).items()},
            checkpoint_sha256=entry.get("checkpoint_sha256"),
            raw=entry,
        )
