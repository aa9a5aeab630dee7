"""Files written whole or not at all: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from chatledger.eventstore import InvalidInputError

__all__ = ["STDOUT", "atomic_path", "database_file", "is_stream", "open_output", "refuse_database"]

STDOUT = "-"
"""The path that means standard output, as in sqlite-utils and gh."""


def is_stream(path: str) -> bool:
    """True when ``path`` is ``-`` (standard output), or exists and is not a regular file or
    directory: a pipe or a device such as ``/dev/stdout``, which can only be written in place."""
    if path == STDOUT:
        return True
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


# The files SQLite keeps beside a database while it is open.
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def database_file(store: object) -> str | None:
    """The SQLite file ``store`` reads (None for other backends and for ``:memory:``)."""
    path = getattr(store, "path", None)
    return path if isinstance(path, str) and path not in ("", ":memory:") else None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet): compare where they resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_database(out: str, database: str | None, option: str = "--out") -> None:
    """Fail before anything is written when ``out`` is the database being read, or one of
    the files SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``), by any name or link.

    Raises:
        InvalidInputError: ``out`` names the database or one of its companion files.
    """
    if database is None or out == STDOUT:
        return
    for suffix in _COMPANIONS:
        if _same_file(out, database + suffix):
            what = "the database" if not suffix else f"the database's {suffix[1:]} file"
            raise InvalidInputError(f"{option} {out!r} is {what} being read "
                                    f"({database + suffix!r}); writing it would destroy the "
                                    "ledger: choose another file")


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any error the temporary file is removed, so a failed export never leaves half a file.
    A symlink is followed (the file it points to is replaced, the link stays); a file replaced
    keeps its permission bits; a pipe or a device (``/dev/stdout``) is yielded as is and
    written in place, since it cannot be replaced.

    Raises:
        FileNotFoundError: The target's directory does not exist.
        IsADirectoryError: The target is a directory.
    """
    if is_stream(path):
        yield path
        return
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, "directory does not exist", directory)
    if os.path.isdir(target):
        raise IsADirectoryError(21, "is a directory", path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".part",
                               dir=directory)
    os.close(fd)
    try:
        # A replaced file keeps its mode: an export over a 0600 file must not widen it.
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # as open() would have created it, not mkstemp's 0600
    os.chmod(tmp, mode)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def open_output(path: str) -> Iterator[BinaryIO]:
    """``path`` opened for binary writing; ``-`` is standard output (left open afterwards)."""
    if path == STDOUT:
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    with open(path, "wb") as f:
        yield f
