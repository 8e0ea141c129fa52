"""Explicit, configurable limits and locations. Environment variables override the defaults.

| setting                     | environment variable        | default                         |
|-----------------------------|-----------------------------|---------------------------------|
| max file / upload           | EXPLORER_MAX_UPLOAD_MB      | 512 MB                          |
| max voxels                  | EXPLORER_MAX_VOXELS         | 134 217 728 (512^3)             |
| max memory per run          | EXPLORER_MAX_RUN_MEMORY_MB  | 8192 MB                         |
| max estimated run time      | EXPLORER_MAX_RUN_MINUTES    | 120 minutes                     |
| max slices along the axis   | EXPLORER_MAX_SLICES         | 4096                            |
| cache directory             | EXPLORER_CACHE_DIR          | $XDG_CACHE_HOME/explorer        |
| disk cache budget           | EXPLORER_CACHE_MAX_MB       | 4096 MB (least recently used out)|

Slices must also make sense for a 2D network: each side at least :data:`MIN_SLICE_SIDE` pixels and at most
:data:`MAX_SLICE_SIDE` (32,767 one-voxel slices are a line, not a volume). An invalid value of any of these
variables is an :class:`InputError` naming the variable.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

__all__ = [
    "MIN_SLICE_SIDE",
    "MAX_SLICE_SIDE",
    "env_number",
    "Limits",
    "check_slices",
    "cache_dir",
    "cache_max_bytes",
    "REPO_ROOT",
    "SAMPLE_DIR",
    "MODELS_DIR",
    "require_dir",
]


#: Shortest and longest side of a slice a 2D+ network is run on.
MIN_SLICE_SIDE = 8
MAX_SLICE_SIDE = 8192


def env_number(name: str, default: float, *, integer: bool = False) -> float:
    """A positive, finite number from the environment variable ``name`` (``default`` when unset or empty).

    Raises:
        InputError: the value is not a positive finite number (or not an integer where one is needed).
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0) or (integer and not value.is_integer()):
        raise InputError(
            name,
            f"environment variable is {raw.strip()[:40]!r}",
            f"a positive {'integer' if integer else 'number'}, e.g. {default:g}",
        )
    return value


@dataclass(frozen=True)
class Limits:
    """Resource limits checked before work starts (see the module table for the environment variables)."""

    max_bytes: int = 512 * 1024**2
    max_voxels: int = 512**3
    max_run_memory_bytes: int = 8 * 1024**3
    max_run_seconds: float = 120 * 60
    max_slices: int = 4096

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults overridden by ``EXPLORER_MAX_UPLOAD_MB``, ``EXPLORER_MAX_VOXELS``,
        ``EXPLORER_MAX_RUN_MEMORY_MB``, ``EXPLORER_MAX_RUN_MINUTES`` and ``EXPLORER_MAX_SLICES``.

        Raises:
            InputError: a variable that is set holds no positive number.
        """
        d = cls()
        mb = 1024**2
        return cls(
            max_bytes=int(env_number("EXPLORER_MAX_UPLOAD_MB", d.max_bytes / mb) * mb),
            max_voxels=int(env_number("EXPLORER_MAX_VOXELS", d.max_voxels, integer=True)),
            max_run_memory_bytes=int(env_number("EXPLORER_MAX_RUN_MEMORY_MB", d.max_run_memory_bytes / mb) * mb),
            max_run_seconds=env_number("EXPLORER_MAX_RUN_MINUTES", d.max_run_seconds / 60) * 60,
            max_slices=int(env_number("EXPLORER_MAX_SLICES", d.max_slices, integer=True)),
        )


def check_slices(shape: tuple[int, int, int], axis_index: int, source: str, limits: Limits | None = None) -> None:
    """Refuse a volume whose slices along ``axis_index`` make no sense for a 2D+ network.

    Args:
        shape: the canonical volume shape ``(X, Y, Z)``.
        axis_index: the slicing axis (0, 1 or 2).
        source: the file named in the error.
        limits: the slice-count limit (default :meth:`Limits.from_env`).

    Raises:
        InputError: more slices than ``EXPLORER_MAX_SLICES``, or a slice side outside
            ``MIN_SLICE_SIDE..MAX_SLICE_SIDE``.
    """
    limits = limits or Limits.from_env()
    dims = list(shape)
    count = dims.pop(axis_index)
    if count > limits.max_slices:
        raise InputError(
            source,
            f"{count:,} slices along the slicing axis, over the limit of {limits.max_slices:,}",
            "another slicing axis, a cropped volume, or raise EXPLORER_MAX_SLICES",
        )
    if min(dims) < MIN_SLICE_SIDE or max(dims) > MAX_SLICE_SIDE:
        raise InputError(
            source,
            f"slices of {dims[0]} × {dims[1]} pixels",
            f"slices with sides of {MIN_SLICE_SIDE}..{MAX_SLICE_SIDE} pixels for a 2D+ network (another slicing axis?)",
        )


def cache_dir() -> Path:
    """Per-user cache directory: ``$EXPLORER_CACHE_DIR``, else ``$XDG_CACHE_HOME/explorer``, else
    ``~/.cache/explorer``."""
    explicit = os.environ.get("EXPLORER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "explorer"


def cache_max_bytes() -> int:
    """The disk cache's byte budget: ``EXPLORER_CACHE_MAX_MB`` (default 4096 MB).

    Raises:
        InputError: the variable holds no positive number.
    """
    return int(env_number("EXPLORER_CACHE_MAX_MB", 4096) * 1024**2)


REPO_ROOT = Path(__file__).resolve().parent.parent
#: The sample volume and cohort, and the shipped zoo: the repository's folders, or where
#: ``EXPLORER_SAMPLE_DIR`` / ``EXPLORER_MODELS_DIR`` say (an installed wheel carries neither: they are
#: ~70 MB of data and weights; :func:`require_dir` says so where they are needed).
SAMPLE_DIR = Path(os.environ.get("EXPLORER_SAMPLE_DIR") or REPO_ROOT / "sample_data")
MODELS_DIR = Path(os.environ.get("EXPLORER_MODELS_DIR") or REPO_ROOT / "models")


def require_dir(directory: str | Path, variable: str) -> Path:
    """``directory`` when it exists.

    Raises:
        InputError: it does not exist, e.g. explorer runs from a wheel, away from the repository checkout that
            holds ``sample_data/`` and ``models/`` (the message names the environment variable to set).
    """
    path = Path(directory)
    if not path.is_dir():
        raise InputError(
            str(path),
            "this folder does not exist (an installed explorer carries no sample data or "
            "zoo; they live in the repository checkout)",
            f"a checkout of the repository, or {variable} naming a copy of the folder",
        )
    return path
