"""The only file-writing code: atomic writes (temporary file in the destination's own folder,
fsync, rename), output locks, and file digests.

Long jobs write through these so that a kill, a full disk or a failed write never leaves a
half-written file behind: the previous file stays as it was. Files get the permissions the user's
umask gives any new file (``mkstemp`` alone would make them 0600). An ``OSError`` of a write names
the destination (``filename``), so the CLI can report it in one line (:func:`describe_os_error`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ffpt.errors import UserError

# operating-system errors a user or the machine causes (permissions, a read-only or full file system,
# a name or path too long, a path through a file): reported in one line, exit status 2
ENVIRONMENT_ERRNOS = frozenset({
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ENOTDIR,
    errno.EISDIR, errno.EFBIG, errno.EMLINK, errno.ELOOP,
})

LOCK_SUFFIX = ".lock"
_TEMP_STEM = 40  # characters of the destination's name kept in a temporary file's name


def is_environment_error(exc: BaseException) -> bool:
    """``exc`` is an OS error of the environment (permissions, read-only or full disk, long name)."""
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` of an OS error in one line (both paths of a rename)."""
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
    if exc.filename is None:
        return reason
    where = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    if exc.errno == errno.ENAMETOOLONG:
        reason += f" (a name may have at most {_name_max(where)} bytes)"
    return f"{where}: {reason}"


def _name_max(path: str) -> int:
    """Longest file name the file system of ``path`` (or its nearest existing parent) allows."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_name_lengths(*paths: str | os.PathLike) -> None:
    """Raise ``OSError(ENAMETOOLONG)`` naming the first path whose file name the file system cannot
    hold: a verb checks the names it derives from its output (``OUT.lock``, ``OUT.cache``, ...)
    before any work, so that a long but valid output name fails at once, not after hours."""
    for path in paths:
        path = Path(path)
        if len(os.fsencode(path.name)) > _name_max(str(path)):
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))


def _file_mode() -> int:
    """0o666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def located_os_error(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` naming ``path`` when it names no file (e.g. ENOSPC from a write to an open file);
    ``raise located_os_error(exc, path) from None`` where a file is appended to."""
    if exc.filename is not None:
        return exc
    located = type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    located.__cause__ = exc
    return located


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed
    and ``path`` keeps its previous content.

    The temporary file lives in ``path``'s own folder (a rename never copies across file systems) and
    has a short name (``.<first 40 characters>.<random>.tmp``), so any destination whose own name fits
    the file system can be written. An ``OSError`` that names no file is raised naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + path.name[:_TEMP_STEM] + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise located_os_error(exc, path) from None
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        located = located_os_error(exc, path)
        if located is exc:
            raise
        raise located from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, payload, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON atomically (non-JSON values as their ``str``)."""
    return atomic_write_text(path, json.dumps(payload, indent=indent, default=str))


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically. The bytes are serialised in memory first and written
    by Python, so a full disk is an ``OSError`` naming ``path`` (torch's own writer raises a
    ``RuntimeError`` that names neither) and the previous file stays intact."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of output ``out`` (a file or a folder): ``<out>.lock`` beside it."""
    out = Path(out)
    return out.with_name(out.name + LOCK_SUFFIX)


def lock_holder(lock: str | os.PathLike) -> str:
    """Who holds ``lock``, as its holder wrote it: ``"ffpt md, pid 123 on host, since ..."``."""
    try:
        fields = json.loads(Path(lock).read_text())
        return (f"{fields['verb']}, pid {fields['pid']} on {fields['host']}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(fields['since']))}")
    except (OSError, ValueError, KeyError, TypeError):  # being written or removed right now, or foreign
        return "another process"


@contextmanager
def output_lock(out: str | os.PathLike, verb: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``<out>.lock`` while the body writes ``out``; yields the lock path.

    The lock file records its holder (verb, pid, host, start time). A second writer is refused at
    once with a :class:`UserError` naming the output and the holder. The lock is an ``flock`` on the
    open file: it is released when the body ends or the holding process dies (also by SIGKILL), so
    a lock file left by a dead run is taken over by the next one; the file is removed on release.
    The descriptor is not inherited by programs the holder starts. Without ``fcntl`` (Windows)
    nothing is locked.
    """
    out = Path(out)
    lock = lock_path(out)
    check_name_lengths(out, lock)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield lock
        return
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise located_os_error(exc, lock) from None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{out}: is being written by {lock_holder(lock)} (lock {lock}); "
                            "wait for it to finish or use another output") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file while we opened it: lock the new one
    try:
        holder = {"verb": verb, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as exc:  # a full disk: the lock holds without its record; the writes will say so
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        yield lock
    finally:
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        os.close(fd)


# values of path-typed config keys that are not paths (e.g. ``reference_rdf: abinitio``)
PATH_TOKENS = frozenset({"abinitio"})


def absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute against the working directory (``~`` expanded, ``..`` folded; links kept)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _absolute_value(value):
    if isinstance(value, Path):
        return value if str(value) in PATH_TOKENS else absolute(value)
    if isinstance(value, list):
        return [_absolute_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_absolute_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _absolute_value(v) for k, v in value.items()}
    if hasattr(type(value), "model_fields"):
        return absolute_paths(value)
    return value


def absolute_paths(config):
    """A copy of the pydantic model ``config`` whose path-typed values (``Path`` fields, in nested
    sections, lists and mappings too) are absolute: resolved once, at the edge, so that tasks on other
    processes or machines and later runs from other folders read the same files. Which keys were
    given (``model_fields_set``) is kept."""
    changes = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        new = _absolute_value(value)
        if new is not value:
            changes[name] = new
    if not changes:
        return config
    copy = config.model_copy(update=changes)
    object.__setattr__(copy, "__pydantic_fields_set__", set(config.model_fields_set))
    return copy
