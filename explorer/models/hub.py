"""Hugging Face Hub ids for smp checkpoints: ``hf:owner/repo[@revision]`` resolved to a local folder.

The repository must hold an smp ``save_pretrained`` folder (``config.json`` + ``model.safetensors``); only
those two files are fetched, through ``huggingface_hub.snapshot_download``. Files already in the local hub
cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``, layout
``models--owner--repo/snapshots/<commit>/...`` with ``refs/<revision>``) are used without a network request;
otherwise they are downloaded, online only. Offline (``HF_HUB_OFFLINE=1``, or no network), one line says what
to download and where to put it. Only a user's own command line or API call names a hub id: nothing inside a
file or an upload is ever resolved here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from ..errors import InputError

__all__ = ["PREFIX", "FILES", "HubId", "is_hub_id", "parse_hub_id", "hub_cache_dir", "resolve_hub_checkpoint"]


PREFIX = "hf:"
#: The files an smp checkpoint folder consists of.
FILES = ("config.json", "model.safetensors")
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_ID = re.compile(rf"^hf:(?P<repo>{_PART}/{_PART})(?:@(?P<revision>[A-Za-z0-9._/-]{{1,128}}))?$")


@dataclass(frozen=True)
class HubId:
    """A parsed ``hf:owner/repo[@revision]``."""

    repo: str
    revision: str = "main"

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.repo}@{self.revision}"


def is_hub_id(source: object) -> bool:
    """Whether ``source`` is a string starting with ``hf:``."""
    return isinstance(source, str) and source.startswith(PREFIX)


def parse_hub_id(text: str) -> HubId:
    """Parse ``hf:owner/repo[@revision]``.

    Raises:
        InputError: a malformed id (a path, ``..``, empty parts, odd characters).
    """
    match = _ID.match(text)
    if not match or ".." in text:
        raise InputError(text[:200], "not a Hugging Face Hub id", "hf:owner/repo or hf:owner/repo@revision")
    return HubId(match["repo"], match["revision"] or "main")


def hub_cache_dir() -> Path:
    """The hub cache read now: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(constants.HF_HUB_CACHE)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_hub_checkpoint(text: str, *, cache_dir: str | Path | None = None) -> Path:
    """The local folder holding an smp checkpoint named by a hub id: from the cache, else downloaded (online).

    Args:
        text: ``hf:owner/repo[@revision]``.
        cache_dir: the hub cache (default :func:`hub_cache_dir`).

    Returns:
        The snapshot folder with ``config.json`` and ``model.safetensors``.

    Raises:
        InputError: a malformed id; offline and not cached (the line says what to download and where);
            a repository, revision or file the hub does not have; no network.
    """
    hub = parse_hub_id(text)
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    args = {"repo_id": hub.repo, "revision": hub.revision, "cache_dir": cache, "allow_patterns": list(FILES)}
    try:
        folder = Path(huggingface_hub.snapshot_download(**args, local_files_only=True))
        if all((folder / f).is_file() for f in FILES):
            return folder
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError):
        pass
    if _offline():
        raise InputError(
            text,
            f"not in the local Hugging Face cache {cache} and HF_HUB_OFFLINE is set",
            f"its files {' and '.join(FILES)} there: on a machine online run `hf download {hub.repo} "
            f"{' '.join(FILES)} --revision {hub.revision} --cache-dir {cache}` and copy {cache}",
        )
    try:
        folder = Path(huggingface_hub.snapshot_download(**args))
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise InputError(
            text,
            f"could not download from the Hugging Face Hub ({type(exc).__name__}: {reason})",
            f"a reachable public repository with {' and '.join(FILES)}, or those files in the local cache {cache}",
        ) from exc
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise InputError(text, f"the repository lacks {', '.join(missing)}", "an smp save_pretrained folder")
    return folder
