"""What a debias run trains and evaluates on: one volume (a held-out block of its slices) or a manifest's
subjects (held-out subjects), behind one interface.

- One volume: the held-out block is :func:`explorer.training.train.split_slices`' (the rule ``explorer train``
  uses, with the parent's ``val_fraction``); fine-tuning stops early on a second block cut from the training slices (the
  top ``val_fraction`` of their foreground, separated by the same gap), so the held-out block stays unseen.
- A manifest: training on the ``train`` subjects, held-out Dice on the ``test`` subjects; fine-tuning stops
  early on one training subject drawn with the run's seed (none when there is only one).

Shapes: windows ``(N, C, H', W')`` and labels ``(N, 1, H', W')`` as in :mod:`explorer.training.train`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attribution.windows import pad_to_multiple
from ..cohort.manifest import read_manifest
from ..errors import InputError
from ..io.files import file_sha256
from ..io.normalise import channel_stats_for
from ..models.checkpoints import CheckpointMeta
from ..stats.scan import dice
from ..study import Study
from ..training.subjects import Subject, _training_windows, heldout_dice, load_subjects, split_rows
from ..training.train import Recipe, _windows, predict, split_slices

__all__ = ["Validate", "DebiasData"]


Validate = Callable[[torch.nn.Module], float]


@dataclass(frozen=True, eq=False)
class DebiasData:
    """The data of a debias run: ``study`` (one volume, optional mask) or ``train``/``test`` subjects."""

    study: Study | None = None
    train: tuple[Subject, ...] = ()
    test: tuple[Subject, ...] = ()
    manifest: dict[str, Any] | None = None

    @classmethod
    def from_manifest(
        cls, path: str | Path, split_column: str = "split", *, root: str | Path | None = None
    ) -> DebiasData:
        """Read a cohort manifest and load its ``train`` and ``test`` subjects (masks required); with ``root``,
        every path must lie inside it (an extracted upload).

        Raises:
            InputError: as :func:`explorer.cohort.manifest.read_manifest` and
                :func:`explorer.training.subjects.split_rows`.
        """
        train, test = split_rows(read_manifest(path, root=root), split_column, source=Path(path).name)
        record = {"name": Path(path).name, "sha256": file_sha256(path), "split_column": split_column}
        return cls(train=tuple(load_subjects(train)), test=tuple(load_subjects(test)), manifest=record)

    @property
    def has_mask(self) -> bool:
        """Whether Dice can be computed and a network trained."""
        return self.manifest is not None or (self.study is not None and self.study.mask is not None)

    @property
    def source(self) -> str:
        """The file named in messages about the data."""
        return self.manifest["name"] if self.manifest else self.study.volume.source  # type: ignore[union-attr]

    def key(self) -> dict[str, Any]:
        """Content hashes of everything used (cache keys)."""
        if self.study is not None:
            return self.study.key()
        return {
            "manifest": self.manifest,
            "train": [s.study.key() for s in self.train],
            "test": [s.study.key() for s in self.test],
        }

    def record(self) -> dict[str, Any]:
        """JSON-ready description with hashes (checkpoint provenance, ``debias.json``)."""
        if self.study is not None:
            return {"unit": "slices", **self.study.record()}
        return {
            "unit": "subject",
            "manifest": self.manifest,
            "train": [s.record() for s in self.train],
            "test": [s.record() for s in self.test],
        }

    def studies(self) -> dict[str, Study]:
        """The scans the channel asymmetry is measured on: the volume, or each held-out subject."""
        if self.study is not None:
            return {Path(self.study.volume.source).name: self.study}
        return {s.id: s.study for s in self.test}

    def heldout_dice(self, model: torch.nn.Module, meta: CheckpointMeta, device: torch.device) -> float | None:
        """Dice on the held-out block (one volume) or the mean over held-out subjects; None without a mask."""
        if not self.has_mask:
            return None
        if self.study is None:
            return float(np.mean(list(heldout_dice(model, self.test, meta, device).values())))
        stack, labels = self._stacks(meta)
        block = split_slices(labels, meta.offsets, _val_fraction(meta)).val
        return dice(predict(model, stack, meta.offsets, block, _stats(meta), device), labels[block])

    def predictions(self, model: torch.nn.Module, meta: CheckpointMeta, device: torch.device) -> np.ndarray:
        """Foreground (bool, flattened) on the evaluated slices: the held-out block or subjects, else every
        slice of the volume; compare two models' predictions on the same inputs."""
        if self.study is None:
            out = []
            for subject in self.test:
                stack = subject.study.slices(meta.axis, meta.normalisation)
                out.append(predict(model, stack, meta.offsets, np.arange(len(stack)), _stats(meta), device).ravel())
            return np.concatenate(out)
        stack, labels = self._stacks(meta)
        chosen = (
            split_slices(labels, meta.offsets, _val_fraction(meta)).val if labels is not None else np.arange(len(stack))
        )
        return predict(model, stack, meta.offsets, chosen, _stats(meta), device).ravel()

    def training(
        self, meta: CheckpointMeta, recipe: Recipe, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, Validate | None, dict[str, Any]]:
        """Training windows and labels, the early-stopping score (higher is better; None: no validation split)
        and the record of the split.

        Raises:
            InputError: no mask (with one volume), or too few slices for the blocks and their gaps.
        """
        if not self.has_mask:
            raise InputError(self.source, "no mask", "a mask to train with (the finetune and retrain variants)")
        stats = _stats(meta)
        if self.study is None:
            train = list(self.train)
            val: list[Subject] = []
            if len(train) > 1:
                pick = int(np.random.default_rng(recipe.seed).integers(len(train)))
                val = [train.pop(pick)]
            x, y = _training_windows(train, meta.offsets, meta.axis, meta.normalisation, stats, recipe.slice_stride)
            score = (
                (lambda model: float(np.mean(list(heldout_dice(model, val, meta, device).values())))) if val else None
            )
            return (
                x,
                y,
                score,
                {"unit": "subject", "train": [s.id for s in train], "early_stopping": [s.id for s in val]},
            )
        stack, labels = self._stacks(meta)
        split = split_slices(labels, meta.offsets, _val_fraction(meta))
        used, stop = _inner_block(split.train, labels, split.gap, _val_fraction(meta))
        used = used[:: recipe.slice_stride]
        x = _windows(stack, meta.offsets, used, stats)
        y = torch.from_numpy(pad_to_multiple(labels[used].astype(np.float32), 32)[0][:, None])

        def score(model: torch.nn.Module) -> float:
            return dice(predict(model, stack, meta.offsets, stop, stats, device), labels[stop])

        return (
            x,
            y,
            score,
            {
                "unit": "slices",
                "train_slices": len(used),
                "gap": split.gap,
                "heldout_slices": [int(split.val[0]), int(split.val[-1])],
                "early_stopping_slices": [int(stop[0]), int(stop[-1])],
            },
        )

    def _stacks(self, meta: CheckpointMeta) -> tuple[np.ndarray, np.ndarray | None]:
        study = self.study
        if study is None:
            raise RuntimeError("a manifest has no single stack")
        return study.slices(meta.axis, meta.normalisation), study.mask_slices(meta.axis)


def _inner_block(train: np.ndarray, labels: np.ndarray, gap: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The top ``fraction`` of the training slices with foreground as an early-stopping block, and the training
    slices at least ``gap`` slices away from it.

    Raises:
        InputError: fewer than two training slices would be left.
    """
    filled = train[labels[train].reshape(len(train), -1).any(axis=1)]
    n = max(1, int(round(fraction * len(filled))))
    stop = filled[-n:]
    kept = train[np.abs(train[:, None] - stop[None, :]).min(axis=1) > gap]
    if len(kept) < 2:
        raise InputError(
            "volume",
            f"{len(train)} training slices leave {len(kept)} beside a {n}-slice early-stopping block",
            "a volume with more slices",
        )
    return kept, stop


def _val_fraction(meta: CheckpointMeta) -> float:
    return float(meta.recipe.get("val_fraction", Recipe.val_fraction))


def _stats(meta: CheckpointMeta) -> tuple[np.ndarray, np.ndarray] | None:
    return channel_stats_for(meta.normalisation, len(meta.offsets))
