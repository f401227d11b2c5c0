"""Output groups of a store: what analyses write, under ``results/`` and ``analyses/``.

The store layer knows where outputs live and how they are written, not which analyses exist
(that is :mod:`xalign.analysis.registry`). An output group is addressed by its path
(``results/<name>``, ``analyses/<kind>/<name>``) and written in one of two ways:

- **by region** (:func:`prepare_output`, then :func:`write_region`): a template first
  (metadata and coordinates; unwritten chunks read as their fill value), then each task
  writes the chunks it owns and its status last, so a rerun skips what is done;
- **whole** (:func:`write_output`): a small result computed and written at once.

Either way the group keeps the ``parameters`` it was made with, and the store's
``generation`` when it was made (see :func:`store_generation`): growing the store (new steps
or languages) raises the store's generation, which marks every output made before as stale
(:func:`is_stale`) instead of deleting it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr
import zarr.errors

from xalign.errors import XalignError
from xalign.store.layout import ANALYSES_GROUP, GENERATION_ATTR, RESULTS_GROUP
from xalign.store.location import StoreLocation
from xalign.store.nodes import child_array
from xalign.store.strings import plain_strings, storable_strings
from xalign.store.write import consolidate

__all__ = [
    "OutputInfo",
    "ResultsError",
    "analysis_path",
    "describe_differences",
    "is_stale",
    "list_outputs",
    "mark_current",
    "open_output",
    "open_output_dataset",
    "output_names",
    "prepare_output",
    "results_path",
    "store_generation",
    "stored_parameters",
    "write_output",
    "write_region",
]


logger = logging.getLogger(__name__)


class ResultsError(XalignError, ValueError):
    """Outputs that cannot be written or read as asked (other parameters, other axes, none)."""


def results_path(name: str) -> str:
    """``results/<name>``: where probing runs go."""
    return f"{RESULTS_GROUP}/{_checked(name)}"


def analysis_path(kind: str, name: str) -> str:
    """``analyses/<kind>/<name>``."""
    return f"{ANALYSES_GROUP}/{_checked(kind)}/{_checked(name)}"


def _checked(name: str) -> str:
    if not name or "/" in name:
        raise ResultsError(f"output name {name!r} must be non-empty and contain no '/'")
    return name


def _open_group(location: StoreLocation, path: str, mode: str = "r") -> zarr.Group | None:
    try:
        return zarr.open_group(location, path=path, mode=mode, use_consolidated=False)  # type: ignore[arg-type]
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None


def open_output(location: StoreLocation, path: str, *, mode: str = "r+") -> zarr.Group | None:
    """The output group at ``path``, or None if there is none (or it has no parameters yet)."""
    group = _open_group(location, path, mode)
    return group if group is not None and "parameters" in group.attrs else None


def stored_parameters(location: StoreLocation, path: str) -> dict[str, Any] | None:
    """The parameters of the output at ``path``, or None if there is no such output."""
    group = open_output(location, path, mode="r")
    parameters = None if group is None else group.attrs.get("parameters")
    return dict(parameters) if isinstance(parameters, Mapping) else None


def output_names(location: StoreLocation, parent: str) -> list[str]:
    """Names of the outputs under ``parent`` (``results``, ``analyses/overlap``), sorted."""
    group = _open_group(location, parent)
    return [] if group is None else sorted(name for name, _ in group.groups())


def store_generation(location: StoreLocation) -> int:
    """How many times the store has grown (new steps or languages); 0 for a store never grown."""
    root = _open_group(location, "")
    return int(cast(int, root.attrs.get(GENERATION_ATTR, 0))) if root is not None else 0


def mark_current(location: StoreLocation, path: str) -> None:
    """Record that the output at ``path`` reflects the store as it is now."""
    group = open_output(location, path)
    if group is not None:
        group.attrs[GENERATION_ATTR] = store_generation(location)


def is_stale(location: StoreLocation, path: str) -> bool:
    """Whether the store grew after the output at ``path`` was made (it needs running again).

    An output that does not follow the store (imported scores: generation null) is never stale.
    """
    group = open_output(location, path, mode="r")
    if group is None:
        return False
    made = group.attrs.get(GENERATION_ATTR, 0)
    return made is not None and int(cast(int, made)) < store_generation(location)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputInfo:
    """One stored output, and whether the store grew after it was made."""

    path: str
    kind: str
    """``probe`` for ``results/<name>``, else the ``<kind>`` of ``analyses/<kind>/<name>``."""
    name: str
    stale: bool


def list_outputs(location: StoreLocation) -> list[OutputInfo]:
    """Every output of the store: probing runs and analyses, each with whether it is stale."""
    found = [(RESULTS_GROUP, "probe", results_path(name)) for name in output_names(location, RESULTS_GROUP)]
    for kind in output_names(location, ANALYSES_GROUP):
        parent = f"{ANALYSES_GROUP}/{kind}"
        found += [(parent, kind, f"{parent}/{name}") for name in output_names(location, parent)]
    return [
        OutputInfo(path=path, kind=kind, name=path.rsplit("/", 1)[1], stale=is_stale(location, path))
        for _, kind, path in found
        if open_output(location, path, mode="r") is not None
    ]


def open_output_dataset(location: StoreLocation, path: str) -> xr.Dataset:
    """The output at ``path``, lazily (Dask-backed data; coordinates in memory as plain strings).

    Its attrs say how it was made (``parameters``) and whether the store grew since (``stale``).

    Raises
    ------
    ResultsError
        If there is no output at ``path``; the message lists the ones beside it.
    """
    if open_output(location, path, mode="r") is None:
        parent, _, name = path.rpartition("/")
        there = output_names(location, parent)
        hint = f"there are: {', '.join(there)}" if there else "none has been run"
        raise ResultsError(f"no {parent}/{name} in the store; {hint}")
    ds = xr.open_zarr(location, group=path, consolidated=False)
    loaded: xr.Dataset = plain_strings(ds.assign_coords(ds.coords.to_dataset().load().coords))
    loaded.attrs["stale"] = is_stale(location, path)
    return loaded


def prepare_output(
    location: StoreLocation,
    path: str,
    template: xr.Dataset,
    *,
    chunks: Mapping[str, int],
    fill_values: Mapping[str, Any],
    overwrite: bool = False,
) -> zarr.Group:
    """Create the output at ``path`` from a lazy ``template``, or check the existing one matches.

    Raises
    ------
    ResultsError
        If an output exists there with other parameters or coordinates.
    """
    existing = None if overwrite else open_output(location, path)
    if existing is not None:
        _check_same(existing, template, path, coords=not is_stale(location, path))
        if _same_coords(existing, template) is None:
            return existing
        # Stale, and the store grew by more than steps (a language): the output is made
        # again over the store as it is now.
        logger.warning("%s: the store grew by more than steps; running it again over the whole store", path)
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
    template = storable_strings(template)
    template.attrs = {**template.attrs, GENERATION_ATTR: store_generation(location)}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        # xarray chunks the small string variables alongside the lazy ones and then loads
        # them back to pick a string type; they are the in-memory fills built above.
        warnings.filterwarnings("ignore", message="variable None has data in the form of a dask array")
        template.to_zarr(
            location,
            group=path,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            compute=False,
        )
    consolidate(location)  # tasks open the store from its consolidated metadata
    group = open_output(location, path)
    assert group is not None
    return group


def _check_same(group: zarr.Group, template: xr.Dataset, path: str, *, coords: bool = True) -> None:
    stored = dict(cast(dict[str, Any], group.attrs.get("parameters") or {}))
    wanted: dict[str, Any] = _plain(template.attrs["parameters"])
    if stored != wanted:
        raise ResultsError(
            f"{path} exists with other parameters ({describe_differences(stored, wanted)}); "
            "use another --name, or --overwrite to replace it"
        )
    differs = _same_coords(group, template) if coords else None
    if differs is not None:
        raise ResultsError(
            f"{path} covers other {differs}s than this store and run have now; "
            "use another --name, or --overwrite"
        )


def _same_coords(group: zarr.Group, template: xr.Dataset) -> str | None:
    """The first coordinate on which the stored output and ``template`` differ, or None."""
    for coord in map(str, template.coords):
        if coord in group:
            mine = np.asarray(child_array(group, str(coord))[...])
            if mine.shape != template[coord].shape or not np.array_equal(
                mine.astype(object), np.asarray(template[coord].values, dtype=object)
            ):
                return coord
    return None


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

    ``arrays`` is the output group, or its arrays by name as already opened
    (:func:`xalign.store.cache.task_arrays`).
    """
    for name, value in values.items():
        array = child_array(arrays, name) if isinstance(arrays, zarr.Group) else arrays[name]
        array[index] = value


def write_output(
    location: StoreLocation,
    path: str,
    result: xr.Dataset,
    *,
    overwrite: bool = False,
    follows_store: bool = True,
) -> bool:
    """Compute ``result`` and store it whole at ``path``.

    ``result.attrs['parameters']`` must say how it was made. Returns False (and computes
    nothing) when the same output with the same parameters is there and not stale. An output
    that does not follow the store (``follows_store=False``: imported scores) never goes stale.

    Raises
    ------
    ResultsError
        If the output exists with other parameters and ``overwrite`` is false.
    """
    wanted = _plain(result.attrs["parameters"])
    stored = stored_parameters(location, path)
    if stored is not None and not overwrite:
        if stored != wanted:
            raise ResultsError(
                f"{path} exists with other parameters ({describe_differences(stored, wanted)}); "
                "use another --name, or --overwrite to replace it"
            )
        if not is_stale(location, path):
            return False
    computed = storable_strings(result.compute())
    computed.attrs = {
        **{k: v for k, v in computed.attrs.items() if k != "stale"},
        "parameters": wanted,
        GENERATION_ATTR: store_generation(location) if follows_store else None,
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        computed.to_zarr(location, group=path, mode="w", zarr_format=3, consolidated=False)
    consolidate(location)
    return True


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, numpy scalars as Python ones)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
