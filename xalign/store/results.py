"""Results groups of a store (``results/<name>``): created once, filled region by region.

An analysis run writes a template first (metadata and coordinates; unwritten chunks read as
their fill value), then each task writes the chunks of its own region and its status, so a
rerun skips what is done and an interrupted run resumes. Parameters live in the group's
attrs; a rerun with other parameters is refused unless it overwrites.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from xalign.errors import XalignError
from xalign.store.layout import RESULTS_GROUP
from xalign.store.location import StoreLocation
from xalign.store.nodes import child_array

__all__ = [
    "ResultsError",
    "describe_differences",
    "open_results",
    "prepare_results",
    "results_path",
    "write_region",
]


class ResultsError(XalignError, ValueError):
    """Results that cannot be written as asked (other parameters, other axes)."""


def results_path(name: str) -> str:
    return f"{RESULTS_GROUP}/{name}"


def open_results(location: StoreLocation, name: str) -> zarr.Group | None:
    """The results group ``name``, or None if there is none."""
    try:
        group = zarr.open_group(location, path=results_path(name), mode="r+", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    return group if "parameters" in group.attrs else None


def prepare_results(
    location: StoreLocation,
    name: str,
    template: xr.Dataset,
    *,
    chunks: Mapping[str, int],
    fill_values: Mapping[str, Any],
    overwrite: bool = False,
) -> zarr.Group:
    """Create ``results/<name>`` from a lazy ``template``, or check the existing one matches.

    Raises
    ------
    ResultsError
        If results of that name exist with other parameters or coordinates.
    """
    existing = None if overwrite else open_results(location, name)
    if existing is not None:
        _check_same(existing, template, name)
        return existing
    # Not the lazy results themselves: xarray computes object-dtype (string) variables to
    # choose their on-disk type, which would run the whole analysis here.
    template = template.copy(
        data={
            var: da.full(
                template[var].shape,
                fill_values[str(var)],
                dtype=template[var].dtype,
                chunks=template[var].chunks,
            )
            for var in template.data_vars
        }
    )
    encoding = {
        var: {
            "chunks": tuple(chunks.get(str(d), template.sizes[d]) for d in template[var].dims),
            "fill_value": fill_values[str(var)],
        }
        for var in template.data_vars
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        # xarray chunks the small string variables alongside the lazy ones and then loads
        # them back to pick a string type; they are the in-memory fills built above.
        warnings.filterwarnings("ignore", message="variable None has data in the form of a dask array")
        template.to_zarr(
            location,
            group=results_path(name),
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            compute=False,
        )
    group = open_results(location, name)
    assert group is not None
    return group


def _check_same(group: zarr.Group, template: xr.Dataset, name: str) -> None:
    stored = dict(cast(dict[str, Any], group.attrs.get("parameters") or {}))
    wanted: dict[str, Any] = dict(template.attrs["parameters"])
    if stored != wanted:
        raise ResultsError(
            f"results/{name} exists with other parameters ({describe_differences(stored, wanted)}); "
            "use another --name, or --overwrite to replace it"
        )
    for coord in map(str, template.coords):
        if coord in group:
            mine = np.asarray(child_array(group, str(coord))[...])
            if mine.shape != template[coord].shape or not np.array_equal(
                mine.astype(object), np.asarray(template[coord].values, dtype=object)
            ):
                raise ResultsError(
                    f"results/{name} covers other {coord}s than this store and run have now; "
                    "use another --name, or --overwrite"
                )


def describe_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """``key: old -> new`` for each parameter that differs."""
    return ", ".join(
        f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    )


def write_region(
    arrays: zarr.Group | Mapping[str, zarr.Array[Any]],
    index: tuple[int, ...],
    values: Mapping[str, np.ndarray],
) -> None:
    """Write ``values`` at the leading-axes position ``index`` of each array (a chunk the caller owns).

    ``arrays`` is the results group, or its arrays by name as already opened
    (:func:`xalign.store.cache.task_arrays`).
    """
    for name, value in values.items():
        array = child_array(arrays, name) if isinstance(arrays, zarr.Group) else arrays[name]
        array[index] = value
