"""Answering a repeated ``explorer analyze`` from a record of the same run, before torch or smp are imported.

The result cache (:mod:`explorer.cache.store`) makes a repeated analysis cheap, but a re-run would still import
torch and segmentation-models-pytorch, load the checkpoints and rebuild the figures — several seconds on a
small CPU. A *run record* keys the whole command instead: the parsed arguments (without ``--out``; parsed, so
``--checkpoint=PATH`` and ``--checkpoint PATH`` are one command), the content hash of every file or folder
they name (an NRRD/MetaImage header's detached data file included), the ``EXPLORER_*`` settings, and the
package's version and source code (so any change to the code invalidates every record). A record holds the
run's own output files (not the user's files that were beside them) and a manifest — the printed lines and
the outputs' hash — signed with the installation's key (:mod:`explorer.cache.integrity`), so an edited or forged
record is never served. When a record matches, ``--out`` is checked and replaced by the rules of a normal run
(:mod:`explorer.outdir`): a folder a normal run refuses is refused, and the user's files in an earlier output
folder are kept. Only the standard library is used here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..cache import integrity
from ..cache.disk import keep_budget, touch_file
from ..io.files import content_sha256, file_sha256
from ..outdir import OUR_NAMES, check_out_dir, staging, swap_into

__all__ = ["RECORD_VERSION", "MANIFEST", "SIGNATURE", "PATH_ARGUMENTS", "run_key", "try_replay", "record_run"]


RECORD_VERSION = "2"
MANIFEST = "manifest.json"
#: The file holding the manifest's HMAC (:func:`explorer.cache.integrity.sign`).
SIGNATURE = "manifest.json.hmac"
#: Namespace entries that are not part of the command's meaning.
_NOT_KEYED = frozenset({"out", "func", "argv", "command"})
#: The ``analyze`` arguments that name files or folders, keyed by their content (a new one must be added here).
PATH_ARGUMENTS = frozenset({"volume", "checkpoint", "mask"})


def run_key(args: argparse.Namespace) -> str:
    """The key of a parsed ``analyze`` command: its arguments except ``--out``, with every path's content hash."""
    keyed = {
        name: _with_hashes(value) if name in PATH_ARGUMENTS else value
        for name, value in sorted(vars(args).items())
        if name not in _NOT_KEYED
    }
    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith("EXPLORER_") and k not in ("EXPLORER_CACHE_DIR", "EXPLORER_CACHE_KEY_FILE")
    )
    text = json.dumps([keyed, env, __version__, RECORD_VERSION, _code_hash()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def try_replay(args: argparse.Namespace) -> bool:
    """Answer a parsed ``analyze`` command from a matching record: replace ``--out`` by its outputs and print
    its lines.

    Returns:
        True when the run was answered; False when there is no intact record for it (the caller computes).

    Raises:
        InputError: ``--out`` is refused by :func:`explorer.outdir.check_out_dir`, as it is for a normal run.
    """
    try:
        key = run_key(args)  # an unreadable input: the run itself reports it
        record = _records() / key
        raw = (record / MANIFEST).read_bytes()
        if not integrity.verify(raw, (record / SIGNATURE).read_text()):
            return False  # damaged, edited or forged: the caller recomputes (and records anew)
        manifest = json.loads(raw)
        if manifest["key"] != key:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    out = check_out_dir(args.out)
    try:
        with staging(out) as tmp:
            for item in (record / "out").iterdir():
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            if _folder_hash(tmp) != manifest["out_sha256"]:  # the copy itself is checked: what is served is signed
                return False
            swap_into(tmp, out)
    except OSError:  # the run itself then meets (and reports) the same problem
        return False
    touch_file(record / MANIFEST)  # last used, for the cache's least-recently-used eviction
    print("".join(f"{line}\n" for line in manifest["lines"]), end="")
    if manifest["outputs"] is not None:  # the summary line of a normal (not --json) run
        print(
            f"wrote {manifest['outputs']} outputs to {args.out} ({manifest['models']} of {manifest['models']} "
            "model results from the cache: the record of an identical earlier run)"
        )
    return True


def record_run(args: argparse.Namespace, lines: Sequence[str], *, outputs: int | None, models: int) -> None:
    """Keep the outputs and printed lines of a successful run for :func:`try_replay` (best effort).

    Args:
        args: the parsed ``analyze`` arguments.
        lines: the per-model lines (or the JSON) the run printed.
        outputs: how many outputs it wrote (None for ``--json``, which prints no summary line).
        models: how many checkpoints it analysed.
    """
    tmp = None
    try:
        key, root = run_key(args), _records()
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root))
        (tmp / "out").mkdir()
        for item in Path(args.out).iterdir():
            if item.name in OUR_NAMES:  # the run's own outputs, not the user's files beside them
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / "out" / item.name)
        raw = json.dumps(
            {
                "key": key,
                "out_sha256": _folder_hash(tmp / "out"),
                "outputs": outputs,
                "models": models,
                "lines": list(lines),
            }
        ).encode()
        (tmp / MANIFEST).write_bytes(raw)
        (tmp / SIGNATURE).write_text(integrity.sign(raw))
        shutil.rmtree(root / key, ignore_errors=True)
        os.rename(tmp, root / key)
        keep_budget()
    except (OSError, ValueError):  # an unusable cache location or key only costs speed
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _code_hash() -> str:
    """SHA-256 over the package's Python sources (a few hundred kB: milliseconds)."""
    return _folder_hash_of(sorted(Path(__file__).resolve().parent.rglob("*.py")), Path(__file__).resolve().parent)


def _records() -> Path:
    from ..config import cache_dir

    return cache_dir() / "runs"


def _with_hashes(value: object) -> object:
    """A path argument (or a list of them) with each existing file or folder paired with its content hash."""
    if isinstance(value, (list, tuple)):
        return [_with_hashes(v) for v in value]
    if isinstance(value, str) and value and os.path.exists(value):
        path = Path(value)
        return [value, _folder_hash(path) if path.is_dir() else content_sha256(path)]
    return value


def _folder_hash(folder: Path) -> str:
    return _folder_hash_of(sorted(p for p in folder.rglob("*") if p.is_file()), folder)


def _folder_hash_of(paths: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()
