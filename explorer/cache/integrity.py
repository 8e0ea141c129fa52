"""The per-installation secret key that makes a forged cache entry, run record or render detectable.

The on-disk cache (``EXPLORER_CACHE_DIR``) may be shared or writable by others. A plain checksum stored beside
an entry proves nothing then: whoever edits the entry can recompute it. Each entry is therefore signed with
HMAC-SHA256 under a random key kept *outside* the cache folder (``EXPLORER_CACHE_KEY_FILE``, else
``$XDG_CONFIG_HOME/explorer/cache.key``, else ``~/.config/explorer/cache.key``), created with mode 0600 on
first use. An entry whose tag does not verify is treated as corrupt and recomputed, never served. What this
promises: nobody without the key can make an entry that is served. What it does not: anyone who can read the
key file (the same user, root) can. Standard library only (:mod:`explorer.reporting.replay` uses it before numpy).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["KEY_BYTES", "key_path", "sign", "verify"]


KEY_BYTES = 32


def key_path() -> Path:
    """Where the key lives: ``$EXPLORER_CACHE_KEY_FILE``, else ``$XDG_CONFIG_HOME/explorer/cache.key``, else
    ``~/.config/explorer/cache.key``."""
    explicit = os.environ.get("EXPLORER_CACHE_KEY_FILE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "explorer" / "cache.key"


def sign(data: bytes) -> str:
    """Hex HMAC-SHA256 of ``data`` under the installation's key.

    Raises:
        OSError: the key can be neither read nor created (then nothing can be cached on disk).
    """
    return hmac.new(_key(str(key_path())), data, hashlib.sha256).hexdigest()


def verify(data: bytes, tag: str) -> bool:
    """Whether ``tag`` is :func:`sign` of ``data`` (compared in constant time); False when the key is unusable."""
    try:
        return hmac.compare_digest(sign(data), tag.strip())
    except OSError:
        return False


@functools.lru_cache(maxsize=4)
def _key(path_name: str) -> bytes:
    """The key at ``path_name``, created (0600, in a 0700 folder) when missing."""
    path = Path(path_name)
    if not path.exists():
        _create(path)
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise OSError(f"integrity key {path} holds {len(key)} bytes, fewer than {KEY_BYTES}")
    return key


def _create(path: Path) -> None:
    # Written under a temporary name, then hard-linked into place: a concurrent process never reads a
    # half-written key, and the first of two creators wins (the other reads the winner's key).
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
