"""xalign: how cross-lingual alignment emerges while a multilingual language model trains.

Build an activation store of every checkpoint over UD treebanks, query it lazily with
xarray, and run the analyses (probing, neuron overlap, transfer) with Dask.
"""

from importlib.metadata import PackageNotFoundError, version

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

__all__ = [
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
