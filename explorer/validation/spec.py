"""What a validation run trains and scores: :class:`ValidationSpec`, validated once and recorded whole.

Methods are written ``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE`` (``occlusion:replace=mean``), each a method of
:data:`explorer.attribution.methods.METHODS` with its parameters; the label is the recorded and plotted name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .. import choices
from ..attribution.windows import validate_offsets
from ..errors import InputError
from ..models.build import check_encoder, resolve_arch
from ..models.strategies import get_strategy
from ..spec import RunSpec
from .planted import REGIMES, PlantedParams, check_regime

__all__ = ["REFERENCE_METHOD", "DEFAULT_METHODS", "DEFAULT_STRATEGIES", "parse_method", "ValidationSpec"]


#: The method whose sign :func:`explorer.validation.run_validation`'s quick run is checked on (tests, docs).
REFERENCE_METHOD = "occlusion:replace=mean"
DEFAULT_METHODS = choices.VALIDATION_METHODS  # REFERENCE_METHOD among them
#: The zoo's strategies that differ in their first convolution (models/train_zoo.py).
DEFAULT_STRATEGIES = choices.VALIDATION_STRATEGIES


def parse_method(text: str) -> tuple[str, dict[str, str]]:
    """``"occlusion:replace=mean"`` → ``("occlusion", {"replace": "mean"})``.

    Raises:
        InputError: a malformed parameter list, an unknown method or parameter (:class:`RunSpec` checks).
    """
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError("--methods", f"{text!r}", "NAME or NAME:KEY=VALUE,KEY=VALUE, e.g. occlusion:replace=mean")
        params[key.strip()] = value.strip()
    RunSpec(method=name.strip(), params=params)  # unknown names and bad values are refused here
    return name.strip(), params


@dataclass(frozen=True)
class ValidationSpec:
    """Every parameter of a validation run.

    Attributes:
        regimes: planted regimes (:data:`explorer.validation.planted.REGIMES`).
        strategies: initialisation strategies trained (:data:`explorer.models.strategies.STRATEGIES`).
        seeds: how many seeds per strategy × direction × regime (seeds ``0 .. seeds - 1``).
        directions: planted offsets ``d`` (each one of ``offsets``; default all of them); 0 is the centre-only task.
        methods: attribution methods, ``NAME[:KEY=VALUE,...]``, each scored on every network.
        epochs: training epochs (:class:`explorer.training.train.Recipe`).
        arch, encoder, offsets: the network trained (the zoo's by default).
        planted: how the planted volumes are drawn.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``, for training and analysis.

    Raises:
        InputError: an unknown regime, strategy, method, architecture or encoder, bad offsets, a direction
            outside the offsets, a repeated entry, or fewer than one seed or epoch.
    """

    regimes: tuple[str, ...] = REGIMES
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seeds: int = 3
    directions: tuple[int, ...] | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    epochs: int = 12
    arch: str = "Unet"
    encoder: str = "mobilenet_v2"
    offsets: tuple[int, ...] = (-1, 0, 1)
    planted: PlantedParams = field(default_factory=PlantedParams)
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", validate_offsets(self.offsets, source="--offsets"))
        if self.directions is None:
            object.__setattr__(self, "directions", self.offsets)
        for name in ("regimes", "strategies", "directions", "methods"):
            values = tuple(getattr(self, name))
            if not values or len(set(values)) != len(values):
                raise InputError(f"--{name}", f"{list(values)}", "at least one value, none repeated")
            object.__setattr__(self, name, values)
        for regime in self.regimes:
            check_regime(regime)
        for strategy in self.strategies:
            get_strategy(strategy)
        for method in self.methods:
            parse_method(method)
        object.__setattr__(self, "arch", resolve_arch(self.arch))
        check_encoder(self.encoder)
        outside = [d for d in self.directions if d not in self.offsets]
        if outside:
            raise InputError(
                "--directions",
                f"{outside} not among the offsets {list(self.offsets)}",
                "planted offsets that the window holds",
            )
        if self.seeds < 1 or self.epochs < 1:
            raise InputError("--seeds/--epochs", f"{self.seeds} seed(s), {self.epochs} epoch(s)", "at least 1 of each")

    @classmethod
    def quick(cls, **changes: Any) -> ValidationSpec:
        """The smallest run whose networks still depend on the planted slice (tests, ``--quick``): 32×32×24
        volumes, independent textures, imagenet and imagenet-uniform, directions -1 and +1, one seed,
        40 short epochs, saliency and occlusion with mean replacement."""
        base = cls(
            regimes=("independent",),
            strategies=("imagenet", "imagenet-uniform"),
            seeds=1,
            directions=(-1, 1),
            methods=("saliency", REFERENCE_METHOD),
            epochs=40,
            planted=PlantedParams(shape=(32, 32, 24)),
        )
        return replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of every field."""
        out = asdict(self)
        out["planted"] = self.planted.to_dict()
        return out
