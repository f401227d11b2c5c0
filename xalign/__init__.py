"""xalign: how cross-lingual alignment emerges while a multilingual language model trains.

Build an activation store of every checkpoint over UD treebanks, query it lazily with
xarray, and run the analyses (probing, neuron overlap, transfer) with Dask.

The analyses (:func:`probe`, :func:`overlap`, :func:`transfer`, :func:`finetune`,
:func:`correlate`, :func:`similarity`, :func:`health`, :func:`import_transfer_scores`) take a store and return
lazy ``xr.Dataset``s; :func:`persist` stores any of them (see :mod:`xalign.api`). They load
on first use, so ``import xalign`` stays light.

Examples
--------
>>> import xalign
>>> store = xalign.open_store("runs/toy.zarr")
>>> xalign.persist(xalign.probe(store, probe="gaussian", k=10), store, name="probe")
>>> store.results("probe")["test_mi"].sel(rank=9).mean("attribute").plot(col="layer")
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from xalign import dims
from xalign.errors import (
    StoreNotFoundError,
    StoreValidationError,
    StoreVersionError,
    TreebankError,
    Violation,
    XalignError,
)
from xalign.store import (
    Store,
    StoreSchema,
    find_violations,
    latest_version,
    load_schema,
    open_store,
    select,
    summarize,
)

try:
    __version__ = version("xalign")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_API = (
    "Persisted",
    "compare",
    "correlate",
    "finetune",
    "health",
    "import_transfer_scores",
    "overlap",
    "persist",
    "probe",
    "similarity",
    "transfer",
)


def __getattr__(name: str) -> Any:
    if name in _API:
        from xalign import api

        return getattr(api, name)
    raise AttributeError(f"module 'xalign' has no attribute {name!r}")


__all__ = [
    *_API,
    "Store",
    "StoreNotFoundError",
    "StoreSchema",
    "StoreValidationError",
    "StoreVersionError",
    "TreebankError",
    "Violation",
    "XalignError",
    "__version__",
    "dims",
    "find_violations",
    "latest_version",
    "load_schema",
    "open_store",
    "select",
    "summarize",
]
