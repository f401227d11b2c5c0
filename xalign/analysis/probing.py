"""Probe every (step, layer, language, attribute) cell: per-slab work, and the lazy grid.

One task reads one (step, layer, language) slab of activations and probes every attribute of
that language on it; :func:`probe_grid` lays those tasks out as a Dask graph whose result is
an xarray Dataset with dims (step, layer, language, attribute, rank), lazy until computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.cells import CellData, kept_values_of, split_cells
from xalign.analysis.selection import METRICS, select_neurons
from xalign.store.store import Store

__all__ = [
    "CELL_VARIABLES",
    "RANK_VARIABLES",
    "ProbeParams",
    "check_selection_size",
    "grid_template",
    "probe_grid",
    "probe_slab",
]

ProbeKind = Literal["latent", "gaussian"]

RANK_VARIABLES = ("selected_neuron", *(f"{split}_{m}" for split in ("dev", "test") for m in METRICS))
"""Per-rank results: the neuron chosen at each rank and the metrics with ranks 0..r."""
CELL_VARIABLES = (
    *(f"all_{split}_{m}" for split in ("dev", "test") for m in METRICS),
    "n_train",
    "n_dev",
    "n_test",
    "n_dropped",
)
"""Per-cell results: metrics with every neuron, and word counts (``n_dropped``: words with a
kept value left out because no subword encodes them)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeParams:
    """How cells are probed; stored with the results."""

    probe: ProbeKind = "latent"
    criterion: str = "mi"
    k: int = 50
    min_count: int = 20
    min_values: int = 2
    seed: int = 0
    max_epochs: int = 50
    """Latent probe: epochs at most (the reference allowed 5000)."""
    patience: int = 3
    """Latent probe: epochs without improvement before early stopping (the reference: 50)."""

    def __post_init__(self) -> None:
        if self.probe not in ("latent", "gaussian"):
            raise ValueError(f"probe must be latent or gaussian, got {self.probe!r}")
        if self.criterion not in METRICS:
            raise ValueError(f"criterion must be one of {', '.join(METRICS)}, got {self.criterion!r}")
        if self.k < 1:
            raise ValueError(f"k must be positive, got {self.k}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def make_probe(self) -> Any:
        if self.probe == "gaussian":
            from xalign.analysis.gaussian import GaussianProbe

            return GaussianProbe()
        from xalign.analysis.latent import LatentProbe

        return LatentProbe(seed=self.seed, max_epochs=self.max_epochs, patience=self.patience)


def check_selection_size(k: int, *, n_neurons: int, selection: int | None = None, option: str = "k") -> None:
    """Refuse a top-k size the store or the selection cannot give, in one line naming the limit.

    Raises
    ------
    ValueError
        If ``k`` exceeds ``n_neurons`` (the hidden-state width) or ``selection`` (the ranks
        a probing run selected).
    """
    if k < 1:
        raise ValueError(f"{option} must be at least 1, got {k}")
    if k > n_neurons:
        raise ValueError(f"{option} ({k}) exceeds the number of neurons ({n_neurons}) in the store")
    if selection is not None and k > selection:
        raise ValueError(
            f"{option} ({k}) exceeds the {selection} neurons that the probing run selected; "
            f"use {option} <= {selection}, or probe again with a larger --k"
        )


def probe_slab(
    store: Store, step: int, layer: int, language: str, attributes: Sequence[str], params: ProbeParams
) -> dict[str, np.ndarray]:
    """Probe every attribute of ``language`` on the (step, layer) slab; one Dask task.

    Returns arrays over ``attributes`` (and ``rank``): :data:`RANK_VARIABLES`,
    :data:`CELL_VARIABLES` and ``status`` ('done' or 'skipped: <reason>').
    """
    labels = store.labels(language)
    kept = kept_values_of(
        store, language, attributes, min_count=params.min_count, min_values=params.min_values
    )
    out = _empty(len(attributes), params.k)
    if kept:
        hidden = store.slab(
            language, step=step, layer=layer, context=f"probing step {step}, layer {layer}, {language}"
        )
        cells = split_cells(hidden, labels, kept)
    else:
        cells = {}
    for i, attribute in enumerate(attributes):
        if attribute not in labels:
            out["status"][i] = f"skipped: {language} has no {attribute} labels"
        elif attribute not in cells:
            out["status"][i] = (
                f"skipped: fewer than {params.min_values} values with {params.min_count}+ words in each split"
            )
        else:
            _probe_cell(cells[attribute], params, out, i)
    return out


def _empty(n_attributes: int, k: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"selected_neuron": np.full((n_attributes, k), -1, dtype=np.int32)}
    for name in RANK_VARIABLES[1:]:
        out[name] = np.full((n_attributes, k), np.nan, dtype=np.float32)
    for name in CELL_VARIABLES:
        out[name] = (
            np.zeros(n_attributes, dtype=np.int64)
            if name.startswith("n_")
            else np.full(n_attributes, np.nan, np.float32)
        )
    out["status"] = np.full(n_attributes, "", dtype=object)
    return out


def _probe_cell(cell: CellData, params: ProbeParams, out: dict[str, np.ndarray], i: int) -> None:
    probe = params.make_probe().fit(*cell.train, n_classes=len(cell.values))
    selection = select_neurons(
        probe, cell.dev, cell.test, k=params.k, criterion=params.criterion, n_values=len(cell.values)
    )
    ranks = len(selection.neurons)
    out["selected_neuron"][i, :ranks] = selection.neurons
    for split, metrics, everything in (
        ("dev", selection.dev, selection.all_dev),
        ("test", selection.test, selection.all_test),
    ):
        for name in METRICS:
            out[f"{split}_{name}"][i, :ranks] = metrics[name]
            out[f"all_{split}_{name}"][i] = everything[name]
    out["n_train"][i], out["n_dev"][i], out["n_test"][i], out["n_dropped"][i] = (
        len(cell.train[1]),
        len(cell.dev[1]),
        len(cell.test[1]),
        cell.dropped,
    )
    out["status"][i] = "done"


def probe_grid(
    store: Store,
    *,
    params: ProbeParams,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    attributes: Sequence[str] | None = None,
) -> xr.Dataset:
    """The probing results of every selected cell, as a lazy Dataset (one task per slab).

    Nothing is read or computed until the caller computes (or writes) the result. The graph
    holds a task and a piece of every variable per slab; to lay out where results go without
    it, see :func:`grid_template`.
    """
    import dask.array as da
    from dask.delayed import delayed

    check_selection_size(params.k, n_neurons=store.n_neurons)
    coords = _grid_coords(store, params, steps, layers, languages, attributes)
    attributes = list(coords[dims.ATTRIBUTE])
    template = _empty(len(attributes), params.k)
    blocks: dict[str, list[list[list[Any]]]] = {name: [] for name in template}
    for step in coords[dims.STEP]:
        for name in blocks:
            blocks[name].append([])
        for layer in coords[dims.LAYER]:
            for name in blocks:
                blocks[name][-1].append([])
            for language in coords[dims.LANGUAGE]:
                task = delayed(probe_slab, pure=True)(
                    store, int(step), int(layer), str(language), attributes, params
                )
                for name, example in template.items():
                    piece = da.from_delayed(task[name], shape=example.shape, dtype=example.dtype)
                    blocks[name][-1][-1].append(piece[None, None, None])
    variables = {
        name: da.concatenate(
            [
                da.concatenate([da.concatenate(per_layer, axis=2) for per_layer in per_step], axis=1)
                for per_step in blocks[name]
            ],
            axis=0,
        )
        for name in template
    }
    return _grid_dataset(variables, coords, params)


def grid_template(
    store: Store, *, params: ProbeParams, attributes: Sequence[str] | None = None
) -> xr.Dataset:
    """The variables, coordinates and parameters of :func:`probe_grid`'s result, with no tasks.

    Each variable is one lazy chunk of zeros, so the template costs the same for ten slabs or
    a hundred thousand: what a driver needs to lay out a results group (see
    :func:`xalign.analysis.probe_runner.run_probe_grid`) without building the grid's graph.
    """
    import dask.array as da

    coords = _grid_coords(store, params, None, None, None, attributes)
    outer = tuple(len(coords[d]) for d in (dims.STEP, dims.LAYER, dims.LANGUAGE))
    variables = {
        name: da.zeros(outer + example.shape, dtype=example.dtype, chunks=-1)
        for name, example in _empty(len(coords[dims.ATTRIBUTE]), params.k).items()
    }
    return _grid_dataset(variables, coords, params)


def _grid_coords(
    store: Store,
    params: ProbeParams,
    steps: Sequence[int] | None,
    layers: Sequence[int] | None,
    languages: Sequence[str] | None,
    attributes: Sequence[str] | None,
) -> dict[str, np.ndarray]:
    """The grid's coordinates: the store's (or the chosen) steps, layers and languages."""
    languages = list(store.languages) if languages is None else list(languages)
    if attributes is None:
        attributes = grid_attributes(store, languages, params)
    return {
        dims.STEP: np.asarray(list(store.steps) if steps is None else list(steps), dtype=np.int64),
        dims.LAYER: np.asarray(list(store.layers) if layers is None else list(layers), dtype=np.int64),
        dims.LANGUAGE: np.asarray(languages, dtype=object),
        dims.ATTRIBUTE: np.asarray(list(attributes), dtype=object),
        dims.RANK: np.arange(params.k),
    }


def _grid_dataset(
    variables: dict[str, Any], coords: dict[str, np.ndarray], params: ProbeParams
) -> xr.Dataset:
    """Name the dims of the grid's variables (per rank or per cell) and attach coords and parameters."""
    named = {}
    for name, data in variables.items():
        variable_dims = (dims.STEP, dims.LAYER, dims.LANGUAGE, dims.ATTRIBUTE, dims.RANK)[: data.ndim]
        named[name] = (variable_dims, data)
    return xr.Dataset(named, coords=coords, attrs={"parameters": params.to_dict()})


def grid_attributes(store: Store, languages: Sequence[str], params: ProbeParams) -> tuple[str, ...]:
    """Attributes kept (by the filters) in at least one of ``languages``, from labels alone."""
    found: dict[str, None] = {}
    for language in languages:
        kept = kept_values_of(
            store,
            language,
            store.attributes(language),
            min_count=params.min_count,
            min_values=params.min_values,
        )
        found.update(dict.fromkeys(kept))
    return tuple(found)
