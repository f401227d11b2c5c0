"""Fixtures shared by the whole suite: small synthetic stores on memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr

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
