"""Answering a repeated ``explorer analyze`` from a record of the same run, before torch or smp are imported.

The result cache (:mod:`explorer.cache`) makes a repeated analysis cheap, but a re-run would still import
torch and segmentation-models-pytorch, load the checkpoints and rebuild the figures — several seconds on a
small CPU. A *run record* keys the whole command instead: the arguments (without ``--out``), the SHA-256 of
every file or folder they name, the ``EXPLORER_*`` settings, and the package's version and source code (so any
change to the code invalidates every record). When a
record matches, its output folder is copied into ``--out`` (a new folder renamed into place) and its printed
lines are printed again. Only the standard library is used here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from . import __version__

RECORD_VERSION = "1"
_OUT_FLAGS = ("--out",)


def run_key(argv: Sequence[str]) -> tuple[str, str] | None:
    """``(key, out)`` of an ``analyze`` command line, or None when it cannot be keyed (no ``--out`` given)."""
    args, out, skip = [], None, False
    for i, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in _OUT_FLAGS:
            out, skip = (argv[i + 1] if i + 1 < len(argv) else None), True
            continue
        if token.startswith("--out="):
            out = token.split("=", 1)[1]
            continue
        args.append([token, _content_hash(Path(token)) if _plain_path(token) else None])
    if out is None:
        out = "explorer-out"  # the CLI's default
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("EXPLORER_") and k != "EXPLORER_CACHE_DIR")
    text = json.dumps([args, env, __version__, RECORD_VERSION, _code_hash()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), out


def try_replay(argv: Sequence[str]) -> bool:
    """Answer ``argv`` from a matching record: copy its outputs to ``--out`` and print its lines.

    Returns:
        True when the run was answered; False when there is no (intact) record for it.
    """
    keyed = run_key(argv)
    if keyed is None:
        return False
    record = _records() / keyed[0]
    try:
        printed = (record / "stdout.txt").read_text()
        manifest = json.loads((record / "manifest.json").read_text())
        if _folder_hash(record / "out") != manifest["out_sha256"]:
            return False  # damaged or edited: the caller recomputes (and records anew)
        _copy_into(record / "out", Path(keyed[1]))
    except (OSError, ValueError, KeyError):
        return False
    print(printed, end="")
    if manifest["outputs"] is not None:  # the summary line of a normal (not --json) run
        print(f"wrote {manifest['outputs']} outputs to {keyed[1]} ({manifest['models']} of {manifest['models']} "
              "model results from the cache: the record of an identical earlier run)")
    return True


def record_run(argv: Sequence[str], lines: Sequence[str], *, outputs: int | None, models: int) -> None:
    """Keep the outputs and printed lines of a successful run for :func:`try_replay` (best effort).

    Args:
        argv: the ``analyze`` arguments (without the subcommand).
        lines: the per-model lines (or the JSON) the run printed.
        outputs: how many outputs it wrote (None for ``--json``, which prints no summary line).
        models: how many checkpoints it analysed.
    """
    keyed = run_key(argv)
    if keyed is None:
        return
    record = _records() / keyed[0]
    tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(keyed[1], tmp / "out")
        (tmp / "stdout.txt").write_text("".join(f"{line}\n" for line in lines))
        (tmp / "manifest.json").write_text(json.dumps({"out_sha256": _folder_hash(tmp / "out"), "outputs": outputs,
                                                       "models": models}))
        shutil.rmtree(record, ignore_errors=True)
        os.rename(tmp, record)
    except OSError:  # an unusable cache location only costs speed
        shutil.rmtree(tmp, ignore_errors=True)


def _code_hash() -> str:
    """SHA-256 over the package's Python sources (a few hundred kB: milliseconds)."""
    return _folder_hash_of(sorted(Path(__file__).resolve().parent.rglob("*.py")), Path(__file__).resolve().parent)


def _records() -> Path:
    from .config import cache_dir

    return cache_dir() / "runs"


def _plain_path(token: str) -> bool:
    return not token.startswith("-") and os.path.exists(token)


def _content_hash(path: Path) -> str:
    return _folder_hash(path) if path.is_dir() else _file_hash(path)


def _file_hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _folder_hash(folder: Path) -> str:
    return _folder_hash_of(sorted(p for p in folder.rglob("*") if p.is_file()), folder)


def _folder_hash_of(paths: Sequence[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root)}\0{_file_hash(path)}\n".encode())
    return digest.hexdigest()


def _copy_into(source: Path, out: Path) -> None:
    """Copy ``source`` to a new folder beside ``out`` and rename it into place (an old ``out`` is replaced)."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if out.exists():
        old = out.parent / f".{out.name}.{os.getpid()}.old"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
