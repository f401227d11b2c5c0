"""Writes to object storage are retried with backoff, and named by their object when every
attempt fails."""

from __future__ import annotations

import asyncio
from typing import Any

import dask.config
import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

from xalign.errors import XalignError
from xalign.store.retry import RetryingStore, UploadError, retry_settings


class Flaky(MemoryStore):
    """A memory store whose writes of keys matching ``fails(key, attempt)`` raise."""

    def __init__(self, fails: Any) -> None:
        super().__init__()
        self.fails = fails
        self.attempts: dict[str, int] = {}

    async def set(self, key: str, value: Any, byte_range: Any = None) -> None:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.fails(key, self.attempts[key]):
            raise TimeoutError(f"timed out sending {key}")
        await super().set(key, value)


def test_a_write_that_fails_twice_is_retried_with_growing_delays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("xalign.store.retry.asyncio.sleep", sleep)
    inner = Flaky(lambda key, n: key.endswith("c/1") and n <= 2)
    array = zarr.create_array(RetryingStore(inner), name="a", shape=(8,), chunks=(4,), dtype="f4")
    array[:] = np.arange(8)
    np.testing.assert_array_equal(zarr.open_array(inner, path="a")[:], np.arange(8))
    assert inner.attempts["a/c/1"] == 3
    assert waits == [0.5, 1.0]
    assert caplog.text.count("upload of a/c/1 failed (timed out sending a/c/1); attempt") == 2


def test_a_write_that_always_fails_names_its_object_and_leaves_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = Flaky(lambda key, n: False)
    array = zarr.create_array(RetryingStore(inner), name="a", shape=(8,), chunks=(4,), dtype="f4")
    array[:] = 1.0
    inner.fails = lambda key, n: key == "a/c/0"
    with (
        dask.config.set({"xalign.write-attempts": 3, "xalign.retry-delay": 0}),
        pytest.raises(
            UploadError, match=r"upload of a/c/0 failed 3 time\(s\) over .* s: timed out"
        ) as caught,
    ):
        array[:] = 2.0
    assert isinstance(caught.value, XalignError)
    assert isinstance(caught.value, OSError)
    np.testing.assert_array_equal(zarr.open_array(inner, path="a")[:], [1, 1, 1, 1, 2, 2, 2, 2])


def test_the_retry_settings_are_checked() -> None:
    assert retry_settings() == (5, 0.5)
    with dask.config.set({"xalign.write-attempts": 0}), pytest.raises(XalignError, match="write-attempts"):
        retry_settings()


def test_a_missing_bucket_is_not_retried() -> None:
    calls: list[str] = []

    class Gone(MemoryStore):
        async def set(self, key: str, value: Any, byte_range: Any = None) -> None:
            calls.append(key)
            raise FileNotFoundError("NoSuchBucket")

    with pytest.raises(FileNotFoundError):
        zarr.create_array(RetryingStore(Gone()), name="a", shape=(4,), dtype="f4")
    assert len(calls) == 1
