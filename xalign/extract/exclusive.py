"""One extraction at a time per store, wherever it lives.

:func:`writer_lock` takes the file lock of :mod:`xalign.extract.lock` for a directory, the
lease of :mod:`xalign.extract.lease` for a store in an ``s3://`` bucket, and none for a store
object in memory (which no other process can reach).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from xalign.extract.lease import object_lease
from xalign.extract.lock import store_lock
from xalign.store.location import StoreLocation, is_url

__all__ = ["WriterLock", "writer_lock"]


class WriterLock(Protocol):
    def check(self) -> None:
        """Raise if this run no longer holds the store (a lease taken over)."""


class _Held:
    """A file lock: held until its holder exits, so never lost while this run lives."""

    def check(self) -> None:
        return None


@contextlib.contextmanager
def writer_lock(
    location: StoreLocation, options: Mapping[str, Any] | None = None, *, purpose: str = "xalign extract"
) -> Iterator[WriterLock]:
    """Hold the one-writer lock of the store at ``location`` (a path, a URL or a store object)
    for the ``with`` block: a lease for an ``s3://`` URL (other object stores are refused), a
    file lock for a directory, none for a store object in memory."""
    if is_url(location) and not str(location).startswith("file://"):
        with object_lease(str(location), options, purpose=purpose) as lease:
            yield lease
        return
    if is_url(location):
        location = str(location).removeprefix("file://")
    with store_lock(location, purpose=purpose):
        yield _Held()
