"""The tasks of a run open their store once per process: no validation, labels read once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xalign.store import cache
from xalign.store.store import open_store
from xalign.testing import SyntheticSpec, write_synthetic_store


@pytest.fixture
def location(tmp_path: Path) -> str:
    path = str(tmp_path / "s.zarr")
    write_synthetic_store(path, SyntheticSpec(languages=("en", "fr")))
    return path


def test_one_store_per_run_and_process_unvalidated(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cache.task_store(location, "run-a")
    assert cache.task_store(location, "run-a") is first
    assert cache.task_store(location, "run-b") is not first

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a task must not validate the store: the driver did")

    monkeypatch.setattr("xalign.store.store.find_violations", refuse)
    cache.task_store(location, "run-c")
    for run in range(cache.CACHED_RUNS + 1):
        cache.task_store(location, f"many-{run}")
    assert cache.task_store(location, "run-a") is not first, "old runs are let go"


def test_labels_and_their_filters_are_read_once(location: str) -> None:
    from xalign.analysis.cells import kept_values_of

    store = open_store(location)
    assert store.labels("en") is store.labels("en")
    kept = kept_values_of(store, "en", ["Number", "Gender"], min_count=5)
    assert kept_values_of(store, "en", ["Number", "Gender"], min_count=5) is kept
    assert set(kept) == {"Number", "Gender"}
    assert kept_values_of(store, "en", ["Number"], min_count=5) == {"Number": kept["Number"]}


def test_a_grid_opens_the_store_once_in_its_tasks(location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from xalign.analysis.probing import ProbeParams, run_probe_grid

    opened: list[bool] = []
    real = cache.open_store

    def counting(where: Any, *, validate: bool = True) -> Any:
        opened.append(validate)
        return real(where, validate=validate)

    monkeypatch.setattr(cache, "open_store", counting)
    report = run_probe_grid(location, params=ProbeParams(probe="gaussian", k=3), scheduler="sync")
    assert report.slabs_run == 3 * 3 * 2
    assert opened == [False], "one unvalidated opening for every task of the run"


def test_a_slab_is_read_straight_from_zarr_as_the_lazy_dataset_gives_it(location: str) -> None:
    import numpy as np

    store = open_store(location)
    for step in store.steps.tolist():
        lazy = store.activations("fr", step=step, layer=2).transpose("word", "neuron").values
        np.testing.assert_array_equal(store.slab("fr", step=step, layer=2), lazy)
    with pytest.raises(KeyError, match="no step 7 in the store"):
        store.slab("fr", step=7, layer=2)
