"""Stores opened once per worker process and run, for the tasks of a grid.

A task given an opened :class:`~xalign.store.store.Store` would carry all its labels, and a
Dask worker keeps the specs of its recent tasks, so tasks carry a location instead. Opening
it in every task cost most of a small task's time (validation, the whole DataTree, every
label: about 266 ms per slab on a 27-slab store). :func:`task_store` opens it once per process
and run: the driver, which validated the store, names the run, and every task of that run in
that process shares one opened store, its labels and what is derived from them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import PurePath
from typing import Any

import zarr

from xalign.store.location import StoreLocation
from xalign.store.store import Store, open_store

__all__ = ["CACHED_RUNS", "task_arrays", "task_store"]

CACHED_RUNS = 4
"""Opened stores kept per process; the oldest run's goes first."""

_opened: OrderedDict[tuple[Any, str], Store] = OrderedDict()
_groups: OrderedDict[tuple[Any, str, str], dict[str, zarr.Array[Any]]] = OrderedDict()
_lock = threading.Lock()


def _where(location: StoreLocation) -> Any:
    return str(location) if isinstance(location, str | PurePath) else id(location)


def task_arrays(location: StoreLocation, path: str, run: str) -> dict[str, zarr.Array[Any]]:
    """The arrays of the group at ``path`` (e.g. ``results/probe``), opened for writing once per
    process and run: looking each one up again cost a task as much as writing it."""
    key = (_where(location), path, run)
    with _lock:
        arrays = _groups.get(key)
        if arrays is not None:
            _groups.move_to_end(key)
            return arrays
    group = zarr.open_group(location, path=path, mode="r+", use_consolidated=False)
    arrays = {name: node for name, node in group.members() if isinstance(node, zarr.Array)}
    with _lock:
        arrays = _groups.setdefault(key, arrays)
        while len(_groups) > CACHED_RUNS:
            _groups.popitem(last=False)
    return arrays


def task_store(location: StoreLocation, run: str) -> Store:
    """The store at ``location`` as opened for ``run`` in this process (opened, unvalidated,
    by the first task of the run here; the driver validated it)."""
    key = (_where(location), run)
    with _lock:
        store = _opened.get(key)
        if store is not None:
            _opened.move_to_end(key)
            return store
    store = open_store(location, validate=False)
    with _lock:
        store = _opened.setdefault(key, store)
        while len(_opened) > CACHED_RUNS:
            _opened.popitem(last=False)
    return store
