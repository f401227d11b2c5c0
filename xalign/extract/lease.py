"""One extraction at a time on object storage: a lease made of conditional writes.

A bucket has no ``flock``. Instead the writer holds a lease: a small JSON object beside the
store (``s3://b/runs/a.zarr`` -> ``s3://b/runs/a.zarr.lease``) saying who holds it and until
when. Every change to it is a conditional write, which S3 (and S3-compatible servers) apply
atomically:

- **take** it by creating the object only if absent (``If-None-Match: *``): of two runs that
  start at once, exactly one succeeds; the other reads the lease and is refused, naming the
  holder and when the lease expires;
- **renew** it, from a background thread every third of its term, by replacing it only if it
  is still the version this holder wrote (``If-Match: <ETag>``);
- **take over** an expired lease (its holder died, or lost the network for a whole term) by
  replacing it only if it is still that expired version: of two runs that find it expired,
  exactly one takes it;
- **release** it at the end by deleting it only if it is still this holder's.

A holder that finds at renewal that its lease was taken over (or that could not renew it
before it expired) has lost it: :meth:`ObjectLease.check` then raises, and extraction stops
at its next check (after each batch here; after each step on a cluster). Expiry is judged
by the clock of the run that finds the lease, so the machines' clocks must agree to well
within a term (``xalign.lease-seconds``, default 60 s), as NTP keeps them.

Only ``s3://`` is supported (through s3fs, whose client sends the conditions); other object
stores are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xalign.extract.lock import StoreLockedError
from xalign.extract.sink import ExtractionError

__all__ = ["LeaseLostError", "ObjectLease", "lease_seconds", "lease_url", "object_lease"]

logger = logging.getLogger(__name__)

DEFAULT_SECONDS = 60.0


class LeaseLostError(ExtractionError):
    """This run's lease on a store was taken over, or could not be renewed in time."""


def lease_url(url: str) -> str:
    """The lease object of a store in a bucket: ``s3://b/a.zarr`` -> ``s3://b/a.zarr.lease``."""
    return url.rstrip("/") + ".lease"


def lease_seconds() -> float:
    """The term of a lease: the Dask config value ``xalign.lease-seconds`` (default 60)."""
    import dask.config

    value = dask.config.get("xalign.lease-seconds", DEFAULT_SECONDS)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise ExtractionError(
            f"the Dask config value xalign.lease-seconds must be a positive number, not {value!r}"
        )
    return seconds


@dataclass(frozen=True)
class _Held:
    """A lease as read from the bucket, with the version (ETag) that was read."""

    owner: str
    token: str
    expires: float
    etag: str

    def describe(self) -> str:
        left = self.expires - time.time()
        when = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
        return f"{self.owner}; lease {when}"


class ObjectLease:
    """The lease on the store at ``url``: :meth:`acquire`, then :meth:`release` (or use
    :func:`object_lease`). ``fs`` is an s3fs filesystem for the bucket."""

    def __init__(self, fs: Any, url: str, *, purpose: str, seconds: float) -> None:
        self.fs = fs
        self.url = lease_url(url)
        self.store_url = url
        self.seconds = seconds
        self.owner = f"{purpose} pid {os.getpid()} on {socket.gethostname()}"
        self.token = uuid.uuid4().hex
        bucket, key, _ = fs.split_path(self.url)
        self._bucket, self._key = bucket, key
        self._etag: str | None = None
        self._expires = 0.0
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the conditional writes ------------------------------------------------------------
    def _put(self, **condition: str) -> str:
        """Write the lease, renewed from now, under ``condition``; return its new ETag."""
        now = time.time()
        expires = now + self.seconds
        body = {
            "owner": self.owner,
            "token": self.token,
            "store": self.store_url,
            "renewed": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "expires": expires,
            "seconds": self.seconds,
        }
        data = json.dumps(body).encode()
        response = self.fs.call_s3("put_object", Bucket=self._bucket, Key=self._key, Body=data, **condition)
        self._expires = expires
        return str(response["ETag"])

    def _read(self) -> _Held | None:
        try:
            response = self.fs.call_s3("get_object", Bucket=self._bucket, Key=self._key)
        except FileNotFoundError:
            return None
        body = _read_body(self.fs, response["Body"])
        try:
            data = json.loads(body)
            return _Held(
                str(data["owner"]), str(data["token"]), float(data["expires"]), str(response["ETag"])
            )
        except (ValueError, KeyError, TypeError):
            # Not a lease xalign wrote: treat it as held by an unknown owner that never expires.
            return _Held(f"unreadable lease object {self.url}", "", float("inf"), str(response["ETag"]))

    def _unreachable(self, exc: BaseException) -> ExtractionError:
        return ExtractionError(f"cannot reach {self.store_url} (taking its lease {self.url}): {exc}")

    # -- the life of a lease ---------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, or take over an expired one.

        Raises
        ------
        StoreLockedError
            If another run holds an unexpired lease, naming it and when the lease expires.
        """
        for _ in range(20):
            try:
                self._etag = self._put(IfNoneMatch="*")
                break
            except Exception as exc:  # a remote filesystem's own errors (botocore's, aiohttp's ...)
                if not _conflict(exc):
                    raise self._unreachable(exc) from exc
            try:
                held = self._read()
            except Exception as exc:
                raise self._unreachable(exc) from exc
            if held is None:
                continue  # released between our write and our read: try again
            if held.expires > time.time():
                raise StoreLockedError(
                    f"{self.store_url} is in use: another extraction holds it ({held.describe()}; lease "
                    f"object {self.url}). Wait for it to finish, or stop it and rerun this command once "
                    "its lease has expired to resume."
                )
            try:
                self._etag = self._put(IfMatch=held.etag)
            except Exception as exc:  # a remote filesystem's own errors (botocore's, aiohttp's ...)
                if not _conflict(exc):
                    raise self._unreachable(exc) from exc
                continue  # another run took it over first: read it again
            logger.warning("took over the expired lease on %s (%s)", self.store_url, held.describe())
            break
        else:  # pragma: no cover - twenty lost races in a row
            raise StoreLockedError(f"{self.store_url}: could not take its lease {self.url}; rerun later")
        self._thread = threading.Thread(target=self._keep, name="xalign-lease", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            self.renew()

    def renew(self) -> None:
        """Extend the lease by a term if it is still this run's; else mark it lost."""
        with self._lock:
            if self._lost is not None or self._etag is None:
                return
            try:
                self._etag = self._put(IfMatch=self._etag)
            except Exception as exc:
                if _conflict(exc) or isinstance(exc, FileNotFoundError):
                    self._lost = f"another run took it over ({self._holder()})"
                elif time.time() > self._expires:
                    self._lost = f"it could not be renewed before it expired ({exc})"
                else:
                    logger.warning("could not renew the lease on %s, will retry: %s", self.store_url, exc)

    def _holder(self) -> str:
        try:
            held = self._read()
        except Exception as exc:
            return f"its holder could not be read: {exc}"
        return held.describe() if held is not None else "the lease object is gone"

    def check(self) -> None:
        """Raise :class:`LeaseLostError` if this run no longer holds the lease."""
        lost = self._lost
        if lost is None and self._etag is not None and time.time() > self._expires:
            lost = "it expired before it could be renewed"
        if lost is not None:
            raise LeaseLostError(
                f"this extraction lost its lease on {self.store_url}: {lost}; it stopped so as not to "
                "write beside another run. Rerun the same command once the store is free to resume."
            )

    def release(self) -> None:
        """Stop renewing, and delete the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._etag is None or self._lost is not None:
                return
            with contextlib.suppress(OSError):  # gone or taken over: nothing of ours to delete
                self.fs.call_s3("delete_object", Bucket=self._bucket, Key=self._key, IfMatch=self._etag)
            self._etag = None


@contextlib.contextmanager
def object_lease(
    url: str, options: Mapping[str, Any] | None = None, *, purpose: str = "xalign extract"
) -> Iterator[ObjectLease]:
    """Hold the lease on the store at ``url`` (``s3://...``) for the ``with`` block."""
    fs = _filesystem(url, options)
    lease = ObjectLease(fs, url, purpose=purpose, seconds=lease_seconds())
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()


def _filesystem(url: str, options: Mapping[str, Any] | None) -> Any:
    from xalign.store.location import filesystem

    protocol = url.split("://", 1)[0]
    if protocol not in ("s3", "s3a"):
        raise ExtractionError(
            f"extract cannot write into {url}: its one-writer lease needs conditional writes, which "
            "xalign uses on s3:// only; extract into a directory and `xalign copy` the store there"
        )
    return filesystem(url, options)[0]


def _read_body(fs: Any, body: Any) -> bytes:
    """An aiobotocore streaming body, read on the event loop of s3fs that made it."""
    from fsspec.asyn import sync

    async def read() -> bytes:
        async with body as stream:
            return bytes(await stream.read())

    return bytes(sync(fs.loop, read))


def _conflict(exc: BaseException) -> bool:
    """Whether a failed S3 call failed on its condition (412, or 409 for a concurrent write)."""
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None)
    if isinstance(response, Mapping):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in {"PreconditionFailed", "ConditionalRequestConflict"} or status in (409, 412)
    return "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower()
