"""One extraction at a time per store on disk: an advisory lock on a file beside the store.

(:func:`xalign.extract.exclusive.writer_lock` picks this lock for a directory, and the lease of
:mod:`xalign.extract.lease` for a store in a bucket.)

Two ``xalign extract`` runs on one store would both plan the same chunks and write them at
once. :func:`store_lock` takes an exclusive :func:`fcntl.flock` on ``<store>.lock`` (beside
the store, not in it: ``--overwrite`` deletes the store's directory, and Zarr lists every
file in it); a second run is refused at once with the holder's pid. The operating system
drops the lock when its holder exits in any way, SIGKILL included, so a killed run never
leaves a stale lock behind and rerunning the same command resumes.

The lock is advisory: it holds between xalign processes on one machine (and on network
file systems whose ``flock`` is coherent across hosts); readers take no lock. Stores that
are not directories (memory, remote) take none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from xalign.extract.sink import ExtractionError
from xalign.store.location import StoreLocation

__all__ = ["StoreLockedError", "lock_path", "store_lock"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, extraction is not guarded
    fcntl = None  # type: ignore[assignment]


class StoreLockedError(ExtractionError):
    """Another process is extracting into the store."""


def lock_path(location: str | os.PathLike[str]) -> Path:
    """The lock file of a store on disk: ``runs/a.zarr`` -> ``runs/a.zarr.lock``."""
    path = Path(location).absolute()
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def store_lock(location: StoreLocation, *, purpose: str = "xalign extract") -> Iterator[Path | None]:
    """Hold the store's lock for the ``with`` block; yield the lock file (None if not locked).

    Raises
    ------
    StoreLockedError
        If another process holds it, naming the store and that process's pid.
    ExtractionError
        If the lock file cannot be created (e.g. the parent directory is read-only).
    """
    if fcntl is None or not isinstance(location, str | os.PathLike):
        yield None
        return
    path = lock_path(location)
    handle = _acquire(path, Path(location), purpose)
    try:
        yield path
    finally:
        # Unlink while holding the lock, then release: a process that opened the old file and
        # is about to lock it sees that it is no longer at `path` and starts over.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(handle)


def _acquire(path: Path, store: Path, purpose: str) -> int:
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ExtractionError(
                f"cannot create a store at {store}: its lock file {path} cannot be created "
                f"({exc.strerror or exc})"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(handle)
            os.close(handle)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise ExtractionError(f"cannot lock {path} for {store}: {exc.strerror}") from exc
            raise StoreLockedError(
                f"{store} is in use: another extraction holds it ({holder}; lock file {path}). "
                "Wait for it to finish, or stop it and rerun this command to resume."
            ) from None
        if _same_file(handle, path):
            break
        os.close(handle)  # released and unlinked by its holder between open and lock: retry
    with contextlib.suppress(OSError):  # who holds it, for the message of a refused run; a full
        # disk must not stop the lock itself (extraction then says that the disk is full)
        os.ftruncate(handle, 0)
        os.write(handle, f"{purpose} pid {os.getpid()} on {socket.gethostname()}\n".encode())
    return handle


def _same_file(handle: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_holder(handle: int) -> str:
    try:
        text = os.pread(handle, 256, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
