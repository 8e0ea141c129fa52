"""Explicit, configurable limits and locations. Environment variables override the defaults.

| setting            | environment variable        | default                         |
|--------------------|-----------------------------|---------------------------------|
| max file / upload  | EXPLORER_MAX_UPLOAD_MB      | 512 MB                          |
| max voxels         | EXPLORER_MAX_VOXELS         | 134 217 728 (512^3)             |
| max memory per run | EXPLORER_MAX_RUN_MEMORY_MB  | 8192 MB                         |
| cache directory    | EXPLORER_CACHE_DIR          | $XDG_CACHE_HOME/explorer        |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from exc


@dataclass(frozen=True)
class Limits:
    """Resource limits checked before work starts (see the module table for the environment variables)."""

    max_bytes: int = 512 * 1024**2
    max_voxels: int = 512**3
    max_run_memory_bytes: int = 8 * 1024**3

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults overridden by ``EXPLORER_MAX_UPLOAD_MB``, ``EXPLORER_MAX_VOXELS`` and
        ``EXPLORER_MAX_RUN_MEMORY_MB``."""
        d = cls()
        return cls(
            max_bytes=int(_env_number("EXPLORER_MAX_UPLOAD_MB", d.max_bytes / 1024**2) * 1024**2),
            max_voxels=int(_env_number("EXPLORER_MAX_VOXELS", d.max_voxels)),
            max_run_memory_bytes=int(_env_number("EXPLORER_MAX_RUN_MEMORY_MB", d.max_run_memory_bytes / 1024**2)
                                     * 1024**2),
        )


def cache_dir() -> Path:
    """Per-user cache directory: ``$EXPLORER_CACHE_DIR``, else ``$XDG_CACHE_HOME/explorer``, else
    ``~/.cache/explorer``."""
    explicit = os.environ.get("EXPLORER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "explorer"


REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "sample_data"
MODELS_DIR = REPO_ROOT / "models"
