"""Writes to a store in object storage, retried with backoff, and named when they fail for good.

An upload to a bucket can fail for a moment (a dropped connection, a server busy or
restarting). :class:`RetryingStore` wraps the store zarr writes through and tries each write
(and delete) again after 0.5 s, 1 s, 2 s ... (Dask config ``xalign.write-attempts``, default
5 attempts, and ``xalign.retry-delay``, default 0.5 s), logging each failure with the object's
URL; if every attempt fails it raises :class:`UploadError`, naming that URL. A write to S3 is
a single PUT that replaces the object whole, so trying it again is safe, and a failed one
leaves the previous object (or none), never half of one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

from zarr.abc.store import Store
from zarr.core.buffer import Buffer
from zarr.storage import WrapperStore

from xalign.errors import XalignError

__all__ = ["RetryingStore", "UploadError", "retry_settings"]

logger = logging.getLogger(__name__)


class UploadError(XalignError, OSError):
    """A write to object storage failed on every attempt; the message names the object."""


def retry_settings() -> tuple[int, float]:
    """(attempts, first delay in seconds) from the Dask config."""
    import dask.config

    attempts = dask.config.get("xalign.write-attempts", 5)
    delay = dask.config.get("xalign.retry-delay", 0.5)
    try:
        attempts, delay = int(attempts), float(delay)
    except (TypeError, ValueError):
        attempts = delay = -1
    if attempts < 1 or delay < 0:
        raise XalignError(
            "the Dask config values xalign.write-attempts (at least 1) and xalign.retry-delay "
            f"(seconds, at least 0) are {attempts!r} and {delay!r}"
        )
    return attempts, delay


class RetryingStore(WrapperStore[Store]):
    """``store`` with each write and delete retried (see the module's doc)."""

    @property
    def fs(self) -> Any:
        """The wrapped store's filesystem (an fsspec store's), for naming and sharing."""
        return getattr(self._store, "fs", None)

    @property
    def path(self) -> Any:
        return getattr(self._store, "path", None)

    def _url(self, key: str) -> str:
        fs, path = self.fs, self.path
        if fs is not None and path is not None:
            return f"{fs.unstrip_protocol(path)}/{key}"
        return key

    async def set(self, key: str, value: Buffer) -> None:
        await self._retried("upload", key, self._store.set, key, value)

    async def delete(self, key: str) -> None:
        await self._retried("delete", key, self._store.delete, key)

    async def _retried(self, what: str, key: str, call: Any, *args: Any) -> None:
        attempts, delay = retry_settings()
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                await call(*args)
                return
            except FileNotFoundError:
                raise  # the bucket is missing: trying again will not make it
            except OSError as exc:
                if attempt == attempts:
                    raise UploadError(
                        errno.EIO,
                        f"{what} of {self._url(key)} failed {attempts} time(s) over "
                        f"{time.monotonic() - started:.1f} s: {exc}",
                    ) from exc
                wait = delay * 2 ** (attempt - 1)
                logger.warning(
                    "%s of %s failed (%s); attempt %d of %d in %.1f s",
                    *(what, self._url(key), exc, attempt + 1, attempts, wait),
                )
                await asyncio.sleep(wait)
