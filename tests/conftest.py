"""Fixtures shared by the whole suite: small synthetic stores on memory and on disk, and an S3
server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zarr

from tests.s3server import S3Server, running_s3_server
from xalign.store.location import StoreLocation
from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store

SPEC = SyntheticSpec(
    signals=(PlantedSignal(attribute="Number", neurons=(3, 7, 11), languages=("en", "fr"), layers=(1, 2)),),
)


@pytest.fixture(params=["memory", "directory"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> StoreLocation:
    """A fresh location on each kind of Zarr store: every I/O test runs on both."""
    if request.param == "memory":
        return zarr.storage.MemoryStore()
    return str(tmp_path / "store.zarr")


@pytest.fixture
def synthetic_store(store_location: StoreLocation) -> StoreLocation:
    """The default synthetic store with planted Number neurons, on memory and on disk."""
    write_synthetic_store(store_location, SPEC)
    return store_location


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> Path:
    """The default synthetic store in a directory (for the CLI and tampering tests)."""
    path = tmp_path / "synthetic.zarr"
    write_synthetic_store(str(path), SPEC)
    return path


S3_BUCKET = "xalign-tests"
"""The bucket of the session's S3 server; each test writes under a prefix of its own."""


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server on loopback for the session (started by the first test that asks)."""
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.filesystem().mkdir(S3_BUCKET)
        yield server


@pytest.fixture
def s3_prefix(s3: S3Server, request: pytest.FixtureRequest) -> str:
    """``s3://<bucket>/<this test's name>``: where this test may write."""
    return f"s3://{S3_BUCKET}/{request.node.name.replace('[', '-').replace(']', '')}"
