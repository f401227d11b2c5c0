"""Strings as users can plot them: numpy unicode for dimension coordinates, objects for labels.

Zarr v3 variable-length strings read back as numpy's ``StringDType``, which xarray cannot plot
against ("Plotting requires coordinates to be numeric ...") and which ``.astype(str)`` cannot
cast. Coordinates are in memory once a store is opened, so they are converted there: an index
coordinate (``language``, ``attribute``, ``language_other`` ...) becomes fixed-width unicode,
as plotting and pandas need; a per-word label (form, lemma, Number ...) becomes an object array
of Python strings, which ``np.unique``, ``groupby`` and pandas take and which costs no more
than the longest label per word. The bytes on disk do not change.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["plain_strings", "storable_strings"]


def plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every ``StringDType`` coordinate as unicode (index) or object (label) values,
    and string data variables (a probe's ``status``) as objects, lazily where they are lazy."""
    converted = {}
    for name, coord in ds.coords.items():
        if coord.dtype.kind == "T":
            values = np.asarray(coord.values, dtype=object)
            converted[name] = (coord.dims, values.astype(str) if name in ds.dims else values, coord.attrs)
    strings = {name: var for name, var in ds.data_vars.items() if var.dtype.kind == "T"}
    ds = ds.assign({name: _objects(var) for name, var in strings.items()}) if strings else ds
    return ds.assign_coords(converted) if converted else ds


def _objects(var: xr.DataArray) -> xr.DataArray:
    if isinstance(var.data, np.ndarray):
        return var.copy(data=np.asarray(var.data, dtype=object))
    return var.copy(data=var.data.map_blocks(lambda block: np.asarray(block, dtype=object), dtype=object))


def storable_strings(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with fixed-width unicode coordinates and variables as objects, which xarray writes
    as Zarr v3 variable-length strings (fixed-width unicode has no Zarr v3 specification, so
    other readers could not read it). The inverse of :func:`plain_strings` before a write."""
    coords = {
        name: (coord.dims, np.asarray(coord.values, dtype=object), coord.attrs)
        for name, coord in ds.coords.items()
        if coord.dtype.kind == "U"
    }
    strings = {name: _objects(var) for name, var in ds.data_vars.items() if var.dtype.kind == "U"}
    ds = ds.assign(strings) if strings else ds
    return ds.assign_coords(coords) if coords else ds
