"""Where a store lives: a directory path, or any Zarr v3 store object (memory, fsspec...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

from zarr.abc.store import Store as ZarrStore

__all__ = ["StoreLocation", "describe_location"]

StoreLocation: TypeAlias = str | os.PathLike[str] | ZarrStore


def describe_location(location: StoreLocation) -> str:
    """A short human-readable name for ``location``, for messages."""
    if isinstance(location, str | os.PathLike):
        return str(Path(location))
    return f"<{type(location).__name__}>"
