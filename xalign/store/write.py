"""Write groups of a store from xarray objects, and consolidate its metadata.

Complete in-memory groups (tests, synthetic stores) are written whole; the extractor
writes a template (lazy data, ``compute=False``: metadata, coordinates and done flags only)
and then fills chunks. Either way the layout comes from :mod:`xalign.store.layout`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import xarray as xr
import zarr

from xalign import dims
from xalign.store.layout import encodings, language_group
from xalign.store.location import StoreLocation

__all__ = ["consolidate", "write_language", "write_root", "write_store"]

logger = logging.getLogger(__name__)


def consolidate(location: StoreLocation) -> None:
    """Consolidate the store's metadata: done once, after the last write."""
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr v3 spec; readers without it still work.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(location)


def write_root(location: StoreLocation, root: xr.Dataset, *, overwrite: bool = False) -> None:
    """Create the store with its root group.

    Raises
    ------
    FileExistsError
        If something is already at ``location`` and ``overwrite`` is false.
    """
    root.to_zarr(
        location, mode="w" if overwrite else "w-", zarr_format=3, consolidated=False, encoding=encodings(root)
    )


def write_language(
    location: StoreLocation,
    language: str,
    ds: xr.Dataset,
    *,
    keep_bits: int | None = None,
    shard: bool = False,
) -> None:
    """Write (or replace) one language group; lazy data variables are left unwritten."""
    with warnings.catch_warnings():
        # numcodecs' BitRound is not in the Zarr v3 spec; zarr-python reads it.
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr")
        ds.to_zarr(
            location,
            group=language_group(language),
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=encodings(ds, keep_bits=keep_bits, shard=shard),
            # Writes metadata and every numpy-backed variable; Dask-backed ones (a
            # template's activations) are left for extraction to fill chunk by chunk.
            compute=False,
        )
    logger.debug("wrote language group %s (%d words)", language, ds.sizes[dims.WORD])


def write_store(
    location: StoreLocation,
    root: xr.Dataset,
    languages: Mapping[str, xr.Dataset],
    *,
    overwrite: bool = False,
) -> None:
    """Write a whole store held in memory, then consolidate its metadata."""
    write_root(location, root, overwrite=overwrite)
    for language, ds in languages.items():
        write_language(location, language, ds)
    consolidate(location)
