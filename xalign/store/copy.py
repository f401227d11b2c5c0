"""Copying a store between any two locations (a directory, a bucket ...), object by object.

:func:`copy_store` reads every object (chunk or metadata document) of the source and writes it
to the destination unchanged, so every chunk keeps its CRC32C checksum, and reads each one back
to check its SHA-256 against the source's. Chunks go first and the ``zarr.json`` documents
last, the root's at the very end: a copy cut short has no root document, so nothing opens it as
a store. Run it again and it resumes: an object the destination already holds with the same
SHA-256 is not written again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xalign.errors import XalignError
from xalign.store.location import filesystem, is_url

__all__ = ["CopyError", "CopyReport", "copy_store"]

_METADATA = "zarr.json"


class CopyError(XalignError):
    """A copy that could not be made or checked; names the object at fault."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyReport:
    objects: int
    """Objects in the source."""
    copied: int
    """Objects written (the others were already in the destination, the same)."""
    bytes_copied: int


def copy_store(
    source: str,
    destination: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_object: Callable[[int], None] | None = None,
) -> CopyReport:
    """Copy the store at ``source`` (a path or URL) to ``destination`` (a path or URL).

    ``storage_options`` (default: the Dask config value ``xalign.storage-options``) apply to
    the URLs. ``on_plan(n)`` hears the number of objects, ``on_object(nbytes)`` of each done.

    Raises
    ------
    StoreNotFoundError
        If the source holds no store, or its endpoint cannot be reached (naming the URL).
    CopyError
        If an object reads back different from the source's.
    """
    from xalign.store.validate import open_root

    open_root(_resolved(source, storage_options))  # a store, or a clear error
    src_fs, src_root = filesystem(source, storage_options)
    dst_fs, dst_root = filesystem(destination, storage_options)
    keys = sorted(_relative(src_fs, src_root), key=_order)
    if on_plan is not None:
        on_plan(len(keys))
    copied = copied_bytes = 0
    for key in keys:
        data = src_fs.cat_file(f"{src_root}/{key}")
        digest = hashlib.sha256(data).hexdigest()
        target = f"{dst_root}/{key}"
        if not _holds(dst_fs, target, digest):
            dst_fs.pipe_file(target, data)
            if not _holds(dst_fs, target, digest):
                raise CopyError(f"{_name(destination, key)} reads back different from {_name(source, key)}")
            copied, copied_bytes = copied + 1, copied_bytes + len(data)
        if on_object is not None:
            on_object(len(data))
    return CopyReport(objects=len(keys), copied=copied, bytes_copied=copied_bytes)


def _resolved(location: str, options: Mapping[str, Any] | None) -> Any:
    from xalign.store.location import resolve_location

    return resolve_location(location, options if is_url(location) else None)


def _relative(fs: Any, root: str) -> list[str]:
    return [path[len(root) + 1 :] for path in fs.find(root)]


def _order(key: str) -> tuple[int, int, str]:
    """Chunks first; metadata documents after, deepest first; the root's last."""
    if key.rsplit("/", 1)[-1] != _METADATA:
        return (0, 0, key)
    return (1, -key.count("/"), key)


def _holds(fs: Any, path: str, digest: str) -> bool:
    try:
        return hashlib.sha256(fs.cat_file(path)).hexdigest() == digest
    except FileNotFoundError:
        return False


def _name(location: str, key: str) -> str:
    return f"{location.rstrip('/')}/{key}"
