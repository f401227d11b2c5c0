"""The activation store: its schema, layout, validation, opening and querying."""

from xalign.store.info import StoreSummary, summarize
from xalign.store.location import StoreLocation
from xalign.store.query import select
from xalign.store.schema import StoreSchema, latest_version, load_schema
from xalign.store.store import Store, open_store
from xalign.store.validate import find_violations

__all__ = [
    "Store",
    "StoreLocation",
    "StoreSchema",
    "StoreSummary",
    "find_violations",
    "latest_version",
    "load_schema",
    "open_store",
    "select",
    "summarize",
]
