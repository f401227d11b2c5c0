"""Write a whole store in one go, from in-memory xarray objects.

Used for stores small enough to build in memory (tests, synthetic stores); the extractor
streams into a template instead. Either way the layout comes from :mod:`xalign.store.layout`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping

import xarray as xr
import zarr

from xalign import dims
from xalign.store.layout import hidden_encoding, language_group
from xalign.store.location import StoreLocation

__all__ = ["consolidate", "write_store"]

logger = logging.getLogger(__name__)


def consolidate(location: StoreLocation) -> None:
    """Consolidate the store's metadata: done once, after the last write."""
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr v3 spec; readers without it still work.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(location)


def write_store(
    location: StoreLocation,
    root: xr.Dataset,
    languages: Mapping[str, xr.Dataset],
    *,
    overwrite: bool = False,
) -> None:
    """Write ``root`` and one group per language, then consolidate the metadata.

    Raises
    ------
    FileExistsError
        If something is already at ``location`` and ``overwrite`` is false.
    """
    root.to_zarr(location, mode="w" if overwrite else "w-", zarr_format=3, consolidated=False)
    for language, ds in languages.items():
        chunk_words = int(ds.attrs["chunk_words"])
        n_chunks = max(1, math.ceil(ds.sizes[dims.WORD] / chunk_words))
        encoding = {
            dims.HIDDEN: hidden_encoding(ds[dims.HIDDEN].dtype, ds.sizes[dims.NEURON], chunk_words),
            dims.DONE: {"chunks": (1, n_chunks)},
        }
        ds.to_zarr(
            location,
            group=language_group(language),
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
        )
        logger.debug("wrote language group %s (%d words)", language, ds.sizes[dims.WORD])
    consolidate(location)
