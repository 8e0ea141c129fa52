"""The parameters of one analysis run as a single frozen object, stored on its result.

A :class:`RunSpec` is built (and validated) once, at the boundary — the CLI's arguments, the app's sidebar, a
Python caller — and then travels unchanged through the orchestration, the engine, the cache keys and the
outputs. Adding an option means adding a field here and reading it where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .attribution.methods import DEFAULT_METHOD, get_method, get_target, resolve_params
from .device import DEVICE_CHOICES, PRECISIONS
from .diagnostics.options import DiagnosticOptions
from .errors import InputError, unknown_name
from .io.volume import AXES

__all__ = ["RunSpec"]


@dataclass(frozen=True)
class RunSpec:
    """What to compute for every checkpoint of an analysis.

    Attributes:
        method: a key of :data:`explorer.attribution.methods.METHODS`; the default, occlusion with each channel
            replaced by its mean, is the one ``explorer validate`` shows recovers planted dependencies
            (docs/validation.md).
        target: a key of :data:`explorer.attribution.methods.TARGETS`.
        params: the method's parameters; the method's defaults are filled in when the spec is built.
        axis: slicing axis; None means "the checkpoints' axis" (:meth:`for_checkpoints` fills it in).
        zflip: also attribute the windows with their channel order reversed: the channel/anatomy split and
            z-flip consistency (``--no-reverse`` turns it off; the outputs then record the split as skipped).
        keep_maps: keep the float16 attribution maps in the results (slice viewer, ``--save-maps``).
        diagnostics: which diagnostics run and with what options.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (:func:`explorer.device.select_device`).
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16`` (autocast of the model's passes;
            :func:`explorer.device.resolve_precision` turns ``auto`` into what the device runs).
        zflip_stride: the z-flip pass predicts and attributes every ``zflip_stride``-th slice (z-flip Dice and
            the asymmetry index under reversal); 1 takes every slice.

    Raises:
        InputError: an unknown method, target, axis or device, or a bad method parameter.
    """

    method: str = DEFAULT_METHOD
    target: str = "predicted"
    params: Mapping[str, Any] = field(default_factory=dict)
    axis: str | None = None
    zflip: bool = True
    keep_maps: bool = False
    diagnostics: DiagnosticOptions = field(default_factory=DiagnosticOptions)
    device: str = "auto"
    precision: str = "auto"
    zflip_stride: int = 1

    def __post_init__(self) -> None:
        get_method(self.method)
        get_target(self.target)
        object.__setattr__(self, "params", resolve_params(self.method, dict(self.params)))
        if self.axis is not None and self.axis not in AXES:
            raise unknown_name("slicing axis", str(self.axis), list(AXES))
        if self.device not in DEVICE_CHOICES:
            raise unknown_name("device", str(self.device), list(DEVICE_CHOICES))
        if self.precision not in PRECISIONS:
            raise unknown_name("precision", str(self.precision), list(PRECISIONS))
        if not isinstance(self.zflip_stride, int) or self.zflip_stride < 1:
            raise InputError("--zflip-stride", f"{self.zflip_stride!r}", "a positive integer")
        if not isinstance(self.zflip, bool) or not isinstance(self.keep_maps, bool):
            raise InputError("spec", f"zflip={self.zflip!r}, keep_maps={self.keep_maps!r}", "true or false")

    def for_checkpoints(self, checkpoints: Sequence[Any]) -> RunSpec:
        """This spec with :attr:`axis` filled in from the checkpoints' metadata when it is None.

        Raises:
            InputError: no axis given and the checkpoints were trained on different axes.
        """
        if self.axis is not None:
            return self
        axes = {c.meta.axis for c in checkpoints}
        if len(axes) > 1:
            raise InputError(
                "--axis", f"the checkpoints were trained on different axes {sorted(axes)}", "--axis to choose one"
            )
        return replace(self, axis=axes.pop())

    def result_key(self) -> dict[str, Any]:
        """The fields besides the axis that change a model's cached result (see
        :func:`explorer.cache.store.result_key`; the device does not: results agree across devices)."""
        return {
            "method": self.method,
            "target": self.target,
            "params": dict(self.params),
            "zflip": self.zflip,
            "zflip_stride": self.zflip_stride,
            "maps": self.keep_maps,
            "dilation": self.diagnostics.dilation,
            "precision": self.precision,
        }

    def record(self) -> dict[str, Any]:
        """JSON-ready record of every field (``summary.json``'s ``inputs``)."""
        out = asdict(self)
        out["params"] = dict(self.params)
        return out
