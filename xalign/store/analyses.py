"""Analysis groups of a store (``analyses/<kind>/<name>``): written whole, read lazily.

The probing grid is long and fills ``results/<name>`` region by region (see
:mod:`xalign.store.results`); the analyses built on it (overlap, transfer, correlation,
similarity) are small, so each is computed and written as one Dataset. A group keeps the
parameters it was made with: asking again with the same ones reuses it, with other ones is
refused unless the caller overwrites it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import xarray as xr
import zarr
import zarr.errors

from xalign.store.location import StoreLocation
from xalign.store.results import ResultsError, describe_differences
from xalign.store.strings import plain_strings
from xalign.store.write import consolidate

__all__ = [
    "ANALYSES_GROUP",
    "AnalysisKind",
    "analysis_names",
    "analysis_path",
    "open_analysis",
    "stored_parameters",
    "write_analysis",
]

ANALYSES_GROUP = "analyses"
AnalysisKind = Literal["overlap", "transfer", "transfer_scores", "correlation", "similarity"]
KINDS: tuple[AnalysisKind, ...] = ("overlap", "transfer", "transfer_scores", "correlation", "similarity")


def analysis_path(kind: AnalysisKind, name: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown analysis kind {kind!r}; known: {', '.join(KINDS)}")
    if not name or "/" in name:
        raise ResultsError(f"analysis name {name!r} must be non-empty and contain no '/'")
    return f"{ANALYSES_GROUP}/{kind}/{name}"


def stored_parameters(location: StoreLocation, kind: AnalysisKind, name: str) -> dict[str, Any] | None:
    """The parameters of ``analyses/<kind>/<name>``, or None if there is no such group."""
    try:
        group = zarr.open_group(location, path=analysis_path(kind, name), mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return None
    parameters = group.attrs.get("parameters")
    return dict(parameters) if isinstance(parameters, Mapping) else None


def analysis_names(location: StoreLocation, kind: AnalysisKind) -> list[str]:
    """Names of the stored analyses of ``kind``, sorted."""
    try:
        group = zarr.open_group(location, path=f"{ANALYSES_GROUP}/{kind}", mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return []
    return sorted(name for name, _ in group.groups())


def open_analysis(location: StoreLocation, kind: AnalysisKind, name: str) -> xr.Dataset:
    """The stored analysis, lazily (Dask-backed data, coordinates in memory).

    Raises
    ------
    ResultsError
        If there is no such analysis; the message lists the ones there are.
    """
    if stored_parameters(location, kind, name) is None:
        there = analysis_names(location, kind)
        hint = f"there are: {', '.join(there)}" if there else f"run xalign {kind.split('_')[0]} first"
        raise ResultsError(f"no {kind} analysis named {name!r} in the store; {hint}")
    ds = xr.open_zarr(location, group=analysis_path(kind, name), consolidated=False)
    loaded: xr.Dataset = plain_strings(ds.assign_coords(ds.coords.to_dataset().load().coords))
    return loaded


def write_analysis(
    location: StoreLocation,
    kind: AnalysisKind,
    name: str,
    result: xr.Dataset,
    *,
    overwrite: bool = False,
) -> bool:
    """Compute ``result`` and store it as ``analyses/<kind>/<name>``.

    ``result.attrs['parameters']`` must say how it was made. Returns False (and computes
    nothing) when the same analysis with the same parameters is already there.

    Raises
    ------
    ResultsError
        If the analysis exists with other parameters and ``overwrite`` is false.
    """
    wanted = _plain(result.attrs["parameters"])
    stored = stored_parameters(location, kind, name)
    if stored is not None and not overwrite:
        if stored == wanted:
            return False
        raise ResultsError(
            f"analyses/{kind}/{name} exists with other parameters ({describe_differences(stored, wanted)}); "
            "use another --name, or --overwrite to replace it"
        )
    computed = result.compute()
    computed.attrs = {**computed.attrs, "parameters": wanted}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        computed.to_zarr(
            location, group=analysis_path(kind, name), mode="w", zarr_format=3, consolidated=False
        )
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
