"""The output folder's rules, shared by ``analyze``, ``cohort`` and a replayed run (standard library only).

A destination is checked before any work (:func:`check_out_dir`): it must be new, empty, or an earlier output
of the same kind (its marker file), and never a file or a symbolic link. Outputs are written into a new folder
beside the destination (``.<name>.<pid>.<random>.tmp``), which then replaces the destination by a rename
(:func:`swap_into`: the old folder is first renamed aside and deleted after the swap), so old and new files are
never mixed and a failed run leaves no partial outputs. Files in a previous output folder that are not ours are
carried over; temporary folders of runs that died (their process is gone) are removed. Kept free of numpy and
torch because :mod:`explorer.reporting.replay` answers a repeated command with these same rules before importing them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

__all__ = ["OUR_NAMES", "check_out_dir", "clean_stale_outputs", "swap_into"]


#: Every top-level name ``explorer analyze`` may create; anything else in a previous output folder is the user's.
OUR_NAMES = frozenset(
    {
        "shares.csv",
        "summary.json",
        "statistics.csv",
        "comparisons.csv",
        "diagnostics.csv",
        "logit_histograms.csv",
        "sanity.json",
        "figures",
        "maps",
    }
)


def check_out_dir(out_dir: str | Path, *, marker: str = "summary.json") -> Path:
    """Check that the outputs can be written to ``out_dir``, before any work is done.

    Args:
        out_dir: the destination folder (need not exist).
        marker: the file that shows a folder is an earlier output of the same kind (``summary.json`` for
            ``analyze``, ``cohort_summary.json`` for ``cohort``), which is then replaced.

    Returns:
        The absolute destination.

    Raises:
        InputError: it is a file or a symbolic link, a folder holding files that are not a previous explorer
            output, or its parent (or the nearest existing ancestor) is not a writable folder.
    """
    out = Path(os.path.abspath(out_dir))
    if out.parent == out:
        raise InputError(out, "is the root folder", "a folder for the outputs")
    if out.is_symlink():  # replacing it would move the link aside, not write where it points
        raise InputError(out, "is a symbolic link", "a real folder path for the outputs (not a link)")
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory", "a directory path for the outputs")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise InputError(
            out,
            "exists and holds files that are not explorer outputs",
            "a new or empty folder, or one written by explorer before (it is replaced)",
        )
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(out, f"{ancestor} is a file", "an output path under a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(
            out, f"cannot write into {ancestor} (permission denied)", "an output folder whose parent is writable"
        )
    return out


def clean_stale_outputs(out: Path) -> int:
    """Remove ``.<name>.<pid>.tmp``/``.old`` folders beside ``out`` whose process is gone; returns how many."""
    removed = 0
    for path in out.parent.glob(f".{glob.escape(out.name)}.*.*"):
        parts = path.name[len(out.name) + 2 :].split(".")
        if path.suffix not in (".tmp", ".old") or not parts[0].isdigit() or _alive(int(parts[0])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A new temporary folder beside ``out`` to write an output folder into before :func:`swap_into`: the parent
    is created and earlier writers' stale temporaries are cleaned first; the folder is removed afterwards,
    whatever happened (after a swap it is empty)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_outputs(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def swap_into(tmp: Path, out: Path, ours: frozenset[str] = OUR_NAMES) -> None:
    """Make ``tmp`` the folder ``out`` by one rename, carrying over the files of a previous ``out`` that are not
    ``ours`` (the user's own notes); the old folder is renamed aside first and removed after the swap."""
    if not out.exists():
        os.rename(tmp, out)
        return
    for item in out.iterdir():
        if item.name not in ours:  # the user's own notes in a previous output folder
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
