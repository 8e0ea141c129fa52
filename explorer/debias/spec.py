"""``DebiasSpec``: every parameter of a debias run, validated once, recorded whole in the outputs.

Shaped like :class:`explorer.spec.RunSpec` (analysis) and :class:`explorer.training.train.Recipe` (training): frozen,
checked in ``__post_init__``, turned into the recipe actually used by :meth:`DebiasSpec.recipe_for`, which
starts from the parent's recorded recipe (or, for a parent that records none, :class:`Recipe`'s defaults, said
so in the outputs) and applies the overrides given here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .. import choices
from ..device import DEVICE_CHOICES
from ..errors import InputError, unknown_name
from ..models.checkpoints import CheckpointMeta
from ..models.strategies import STRATEGIES
from ..training.train import Recipe, check_recipe
from .surgery import MODES

__all__ = ["VARIANTS", "FINETUNE_EPOCHS", "RETRAIN_STRATEGY", "DebiasSpec"]


#: The variants, each with its one-line definition (CLI help, app, report).
VARIANTS: dict[str, str] = choices.DEBIAS_VARIANTS
#: Epochs of a fine-tuning run unless given (the issue's "2 epochs on the sample").
FINETUNE_EPOCHS = 2
#: The strategy a retrain uses for each surgery mode unless one is given.
RETRAIN_STRATEGY = {"symmetric": "imagenet-symmetric", "uniform": "imagenet-uniform"}


@dataclass(frozen=True)
class DebiasSpec:
    """What to make from a parent checkpoint.

    Attributes:
        variants: keys of :data:`VARIANTS`, each giving one child.
        mode: the surgery's mode (:data:`explorer.debias.surgery.MODES`), also the tie kept while fine-tuning.
        epochs: fine-tuning epochs (default :data:`FINETUNE_EPOCHS`); for retrain the parent's epochs unless given.
        freeze_encoder: fine-tune the decoder and head only (the encoder, first conv included, stays as cut).
        strategy: the retrain's strategy (default :data:`RETRAIN_STRATEGY` of the mode).
        lr, batch_size, slice_stride: overrides of the parent's recipe (None: the parent's value).
        seed: the seed of every random draw of the run (shuffles, augmentation, early-stopping subject).
        patience: fine-tuning stops after this many epochs without a better early-stopping Dice.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.

    Raises:
        InputError: an unknown variant, mode, strategy or device, or a bad number.
    """

    variants: tuple[str, ...] = ("surgery",)
    mode: str = "symmetric"
    epochs: int | None = None
    freeze_encoder: bool = False
    strategy: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    slice_stride: int | None = None
    seed: int = 0
    patience: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(dict.fromkeys(self.variants)))
        if not self.variants:
            raise InputError("--variant", "none given", "one or more of: " + ", ".join(VARIANTS))
        for variant in self.variants:
            if variant not in VARIANTS:
                raise unknown_name("variant", variant, VARIANTS)
        if self.mode not in MODES:
            raise unknown_name("surgery mode", self.mode, MODES)
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise unknown_name("strategy", self.strategy, STRATEGIES)
        if self.device not in DEVICE_CHOICES:
            raise unknown_name("device", self.device, DEVICE_CHOICES)
        if self.epochs is not None and self.epochs < 1 or self.patience < 1:
            raise InputError("--epochs", f"epochs {self.epochs}, patience {self.patience}", "at least 1 each")
        if self.lr is not None and not self.lr > 0:
            raise InputError("--lr", f"{self.lr}", "a positive learning rate")

    @property
    def trains(self) -> bool:
        """Whether a variant trains (and so needs a mask)."""
        return any(v != "surgery" for v in self.variants)

    @property
    def retrain_strategy(self) -> str:
        return self.strategy or RETRAIN_STRATEGY[self.mode]

    def recipe_for(self, parent: CheckpointMeta, variant: str) -> tuple[Recipe, str]:
        """The recipe ``variant`` trains with, and where its values come from.

        Returns:
            ``(recipe, source)``; ``source`` says "the parent's recorded recipe" or that the parent records none
            and the defaults (the form's values) were used.

        Raises:
            InputError: a recipe that cannot train (:func:`explorer.training.train.check_recipe`).
        """
        known = {f.name for f in fields(Recipe)}
        recorded = {k: v for k, v in parent.recipe.items() if k in known}
        source = (
            "the parent's recorded recipe"
            if recorded
            else "the form's values (the parent records no recipe): "
            + ", ".join(f"{k} {v}" for k, v in asdict(Recipe()).items() if k in ("lr", "batch_size", "loss"))
        )
        recipe = replace(Recipe(), **{**recorded, "seed": self.seed})
        epochs = self.epochs or (FINETUNE_EPOCHS if variant == "finetune" else recipe.epochs)
        overrides = {
            k: v
            for k, v in dict(lr=self.lr, batch_size=self.batch_size, slice_stride=self.slice_stride).items()
            if v is not None
        }
        recipe = replace(recipe, epochs=epochs, **overrides)
        check_recipe(recipe)
        return recipe, source

    def variant_record(self, variant: str) -> dict[str, Any]:
        """The fields that change ``variant``'s child (its cache key and provenance)."""
        out: dict[str, Any] = {"variant": variant, "mode": self.mode, "seed": self.seed}
        if variant == "finetune":
            out.update(freeze_encoder=self.freeze_encoder, patience=self.patience)
        if variant == "retrain":
            out["strategy"] = self.retrain_strategy
        return out

    def record(self) -> dict[str, Any]:
        """JSON-ready record of every field."""
        return {**asdict(self), "variants": list(self.variants)}
