"""The one-writer lease on a store in a bucket, against a real S3 server (SeaweedFS on loopback):
taken by create-if-absent, renewed and released by If-Match, taken over only once expired, and
lost (so that its holder stops) when another run took it over."""

from __future__ import annotations

import json
import time
from typing import Any

import dask.config
import pytest

from tests.s3server import S3Server
from xalign.extract.exclusive import writer_lock
from xalign.extract.lease import LeaseLostError, ObjectLease, lease_seconds, lease_url, object_lease
from xalign.extract.lock import StoreLockedError
from xalign.extract.sink import ExtractionError


def _lease(s3: S3Server, url: str, *, seconds: float, purpose: str = "test") -> ObjectLease:
    return ObjectLease(s3.filesystem(), url, purpose=purpose, seconds=seconds)


def _read(s3: S3Server, url: str) -> dict[str, Any]:
    fs = s3.filesystem()
    return dict(json.loads(fs.cat_file(lease_url(url).removeprefix("s3://"))))


def test_a_lease_is_refused_to_a_second_run_while_its_holder_renews_it(s3: S3Server, s3_prefix: str) -> None:
    url = f"{s3_prefix}/s.zarr"
    with dask.config.set({"xalign.lease-seconds": 1.5}), object_lease(url, s3.storage_options) as lease:
        first = _read(s3, url)
        assert first["owner"] == lease.owner
        assert first["store"] == url
        for _ in range(2):
            time.sleep(1.0)  # past the first term: renewed from the background thread
            with pytest.raises(
                StoreLockedError, match=r"is in use: another extraction holds it \(xalign extract pid"
            ):
                _lease(s3, url, seconds=1.5).acquire()
        assert _read(s3, url)["expires"] > first["expires"]
        lease.check()
    assert not s3.filesystem().exists(lease_url(url).removeprefix("s3://")), "released"
    _lease(s3, url, seconds=5).acquire()  # free again


def test_an_expired_lease_is_taken_over_once_and_its_old_holder_learns_it_lost_it(
    s3: S3Server, s3_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{s3_prefix}/s.zarr"
    dead = _lease(s3, url, seconds=0.5, purpose="dead run")
    dead.acquire()
    dead._stop.set()  # as if its process froze: it renews no more
    time.sleep(0.8)
    heir = _lease(s3, url, seconds=30, purpose="heir")
    rival = _lease(s3, url, seconds=30, purpose="rival")
    heir.acquire()
    assert "took over the expired lease" in caplog.text
    assert "dead run pid" in caplog.text
    with pytest.raises(StoreLockedError, match="heir pid"):
        rival.acquire()  # the takeover is the heir's alone
    dead.renew()
    with pytest.raises(LeaseLostError, match=r"lost its lease on .*another run took it over \(heir pid"):
        dead.check()
    dead.release()  # deletes nothing of the heir's
    assert _read(s3, url)["owner"] == heir.owner
    heir.release()
    assert not s3.filesystem().exists(lease_url(url).removeprefix("s3://"))


def test_a_lease_not_renewed_in_time_is_lost_even_before_anyone_takes_it(
    s3: S3Server, s3_prefix: str
) -> None:
    lease = _lease(s3, f"{s3_prefix}/s.zarr", seconds=0.3)
    lease.acquire()
    lease._stop.set()
    time.sleep(0.5)
    with pytest.raises(LeaseLostError, match="it expired before it could be renewed"):
        lease.check()


def test_an_object_that_is_not_a_lease_is_never_taken_over(s3: S3Server, s3_prefix: str) -> None:
    url = f"{s3_prefix}/s.zarr"
    s3.filesystem().pipe_file(lease_url(url).removeprefix("s3://"), b"not json")
    with pytest.raises(StoreLockedError, match="unreadable lease object"):
        _lease(s3, url, seconds=1).acquire()


def test_leases_are_for_s3_and_their_term_is_checked(tmp_path: Any) -> None:
    refused = r"extract cannot write into gs://b/s.zarr: .* s3:// only"
    with pytest.raises(ExtractionError, match=refused), writer_lock("gs://b/s.zarr"):
        pass
    assert lease_seconds() == 60
    with (
        dask.config.set({"xalign.lease-seconds": "0"}),
        pytest.raises(ExtractionError, match="lease-seconds"),
    ):
        lease_seconds()
    with writer_lock(f"file://{tmp_path}/s.zarr") as lock:  # a file lock, which is never lost
        assert (tmp_path / "s.zarr.lock").exists()
        lock.check()
