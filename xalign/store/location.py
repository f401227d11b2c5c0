"""Where a store lives: a directory path, a URL (``s3://``, ``gs://``, ``file://`` ...), or any
Zarr v3 store object (memory, fsspec ...).

A URL other than ``file://`` becomes zarr's own :class:`zarr.storage.FsspecStore` (fsspec is
what xarray and zarr use for ``storage_options``, so a store xalign opens by URL opens the same
way with plain ``xr.open_datatree(url, engine="zarr", storage_options=...)``; ``s3://`` needs
``pip install 'xalign[s3]'``, which installs s3fs). Credentials and the endpoint come from
``storage_options``, else from the Dask config value ``xalign.storage-options`` (what the
command line's ``--storage-option KEY=VALUE`` sets, or ``DASK_XALIGN__STORAGE_OPTIONS`` in the
environment), else from the filesystem's own environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL`` ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from zarr.abc.store import Store as ZarrStore

from xalign.errors import XalignError

__all__ = [
    "StoreLocation",
    "StoreLocationError",
    "describe_location",
    "filesystem",
    "is_remote",
    "is_shared",
    "is_url",
    "resolve_location",
    "storage_options",
]

StoreLocation: TypeAlias = str | os.PathLike[str] | ZarrStore

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StoreLocationError(XalignError, ValueError):
    """A store location xalign cannot open."""


def is_url(location: object) -> bool:
    """Whether ``location`` is a URL string (``s3://...``, ``file://...``)."""
    return isinstance(location, str) and _URL.match(location) is not None


def storage_options(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``given``, else the Dask config value ``xalign.storage-options`` (default: none)."""
    if given is not None:
        return dict(given)
    import dask.config

    configured = dask.config.get("xalign.storage-options", None) or {}
    if not isinstance(configured, Mapping):
        raise StoreLocationError(
            f"the Dask config value xalign.storage-options must be a mapping, not {configured!r}"
        )
    return dict(configured)


def resolve_location(
    location: StoreLocation, options: Mapping[str, Any] | None = None, *, read_only: bool = False
) -> StoreLocation:
    """What zarr opens for ``location``: a ``file://`` URL becomes its path, another URL a
    :class:`zarr.storage.FsspecStore` with its storage options, whose writes are retried
    (:class:`~xalign.store.retry.RetryingStore`); a path or store object is returned unchanged.

    Raises
    ------
    StoreLocationError
        If storage options are given for a path, or the URL's filesystem is unknown.
    ModuleNotFoundError
        If the URL's filesystem needs a package that is not installed (s3fs for ``s3://``).
    """
    if not is_url(location):
        if options:
            raise StoreLocationError(f"storage options apply to URLs, not to {describe_location(location)}")
        return location
    assert isinstance(location, str)
    if location.startswith("file://"):
        return location.removeprefix("file://")
    from zarr.storage import FsspecStore

    from xalign.store.retry import RetryingStore

    try:
        store = FsspecStore.from_url(location, storage_options=storage_options(options), read_only=read_only)
    except ValueError as exc:  # fsspec's "Protocol not known"
        raise StoreLocationError(f"cannot open {location}: {exc}") from exc
    except ImportError as exc:  # fsspec's "Install s3fs to access S3"
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(location.split("://")[0], "fsspec")
        raise ModuleNotFoundError(f"{location} needs {package}: {exc}", name=package) from exc
    return RetryingStore(store)


def filesystem(location: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """A synchronous fsspec filesystem for ``location`` (a path or URL) and the location's path in
    it, with no trailing slash: for objects beside a store, or a store's objects one by one. A
    URL takes its storage options as :func:`resolve_location` does; a path, the local filesystem
    (which makes parent directories as it writes)."""
    from fsspec.core import url_to_fs

    text = os.fspath(location)
    if is_url(text) and not text.startswith("file://"):
        fs, path = url_to_fs(text, **storage_options(options))
    else:
        fs, path = url_to_fs(str(Path(text.removeprefix("file://")).absolute()), auto_mkdir=True)
    return fs, str(path).rstrip("/")


def describe_location(location: StoreLocation) -> str:
    """A short human-readable name for ``location``, for messages: a path, or a URL."""
    if isinstance(location, str) and is_url(location):
        return location
    if isinstance(location, str | os.PathLike):
        return str(Path(location))
    fs, path = getattr(location, "fs", None), getattr(location, "path", None)
    if fs is not None and path is not None:
        return str(fs.unstrip_protocol(path))
    return f"<{type(location).__name__}>"


def is_remote(location: StoreLocation) -> bool:
    """Whether ``location`` is a store object on a remote filesystem (what a URL resolves to):
    each of its metadata documents is a request, and its errors are the filesystem's own."""
    return not isinstance(location, str | os.PathLike) and is_shared(location)


def is_shared(location: StoreLocation) -> bool:
    """Whether other processes (a cluster's workers) can open ``location``: a path or URL, or a
    store object on a filesystem other than this process's memory."""
    if isinstance(location, str | os.PathLike):
        return True
    protocol = getattr(getattr(location, "fs", None), "protocol", "memory")
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return "memory" not in protocols
