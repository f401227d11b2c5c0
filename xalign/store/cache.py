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
from collections.abc import Callable
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


def _remember(table: OrderedDict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    """``table[key]``, made by ``make()`` the first time; the oldest entries go past CACHED_RUNS."""
    with _lock:
        if key in table:
            table.move_to_end(key)
            return table[key]
    made = make()  # outside the lock: opening a store reads from disk
    with _lock:
        kept = table.setdefault(key, made)
        while len(table) > CACHED_RUNS:
            table.popitem(last=False)
    return kept


def task_arrays(location: StoreLocation, path: str, run: str) -> dict[str, zarr.Array[Any]]:
    """The arrays of the group at ``path`` (e.g. ``results/probe``), opened for writing once per
    process and run: looking each one up again cost a task as much as writing it."""

    def open_arrays() -> dict[str, zarr.Array[Any]]:
        group = zarr.open_group(location, path=path, mode="r+", use_consolidated=False)
        return {name: node for name, node in group.members() if isinstance(node, zarr.Array)}

    arrays: dict[str, zarr.Array[Any]] = _remember(_groups, (_where(location), path, run), open_arrays)
    return arrays


def task_store(location: StoreLocation, run: str) -> Store:
    """The store at ``location`` as opened for ``run`` in this process (opened, unvalidated,
    by the first task of the run here; the driver validated it)."""
    store: Store = _remember(_opened, (_where(location), run), lambda: open_store(location, validate=False))
    return store
