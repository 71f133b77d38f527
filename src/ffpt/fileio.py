"""The only atomic-write code: temporary file in the same folder, fsync, rename; and file digests.

Long jobs write through these so that a kill never leaves a half-written file behind. Files get
the permissions the user's umask gives any new file (``mkstemp`` alone would make them 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ffpt.errors import UserError


def _file_mode() -> int:
    """0o666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON atomically (non-JSON values as their ``str``)."""
    return atomic_write_text(path, json.dumps(payload, indent=indent, default=str))


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def output_lock(out: str | os.PathLike, verb: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``<out>.lock`` while the body writes ``out``; yields the lock path.

    A second holder is refused at once with a :class:`UserError`. The lock is released when the
    body ends or the process dies (``flock``), so a lock file left by a killed run does not block
    the next one; the file is removed on release. Without ``fcntl`` (Windows) nothing is locked.
    """
    out = Path(out)
    lock = out.with_name(out.name + ".lock")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield lock
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{out}: another {verb} run is writing it (lock {lock})") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file while we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)
