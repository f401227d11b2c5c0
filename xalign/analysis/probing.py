"""Probe every (step, layer, language, attribute) cell: per-slab work, and the lazy grid.

One task reads one (step, layer, language) slab of activations and probes every attribute of
that language on it; :func:`probe_grid` lays those tasks out as a Dask graph whose result is
an xarray Dataset with dims (step, layer, language, attribute, rank), lazy until computed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.cells import CellData, CellFilters, kept_values_of, split_cells
from xalign.analysis.engine import JobReport, SlabJob, lazy_result, run_job, select_values
from xalign.analysis.gate import cell_seed, permutation_test
from xalign.analysis.probes import Probe, clone_probe, describe_probe, make_probe
from xalign.analysis.selection import METRICS, select_neurons
from xalign.store.location import StoreLocation
from xalign.store.outputs import ResultsError, results_path
from xalign.store.store import Store, open_store

__all__ = [
    "CELL_VARIABLES",
    "RANK_VARIABLES",
    "ProbeParams",
    "check_selection_size",
    "grid_attributes",
    "probe_grid",
    "probe_job",
    "probe_slab",
    "reselect",
    "run_probe_grid",
    "summarize_slab",
]

RANK_VARIABLES = (
    "selected_neuron",
    *(f"{split}_{m}" for split in ("dev", "test") for m in METRICS),
    "selected_rho",
)
"""Per-rank results: the neuron chosen at each rank, the metrics with ranks 0..r, and the chosen
neuron's fitted inclusion probability (a latent probe's rho; NaN for other probes)."""
CELL_VARIABLES = (
    *(f"all_{split}_{m}" for split in ("dev", "test") for m in METRICS),
    "n_train",
    "n_dev",
    "n_test",
    "n_dropped",
    "gate_p",
    "gate_null_mi",
    "self_overlap",
    "mean_rho",
)
"""Per-cell results: metrics with every neuron, and word counts (``n_dropped``: words with a
kept value left out because no subword encodes them; ``gate_p``: the permutation p-value of the
test MI of the k selected neurons, and ``gate_null_mi`` its mean under the null, see
:mod:`xalign.analysis.gate`; ``self_overlap``: the overlap of the k selected neurons with those
selected again on resampled training words, the cell's reproducibility, see :func:`reselect`)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeParams(CellFilters):
    """How cells are probed; stored with the results (:meth:`to_dict`).

    Each field's ``help`` is also the text of its command-line option (``xalign probe``).

    Examples
    --------
    >>> from xalign.analysis.latent import LatentProbe
    >>> params = ProbeParams(probe=LatentProbe(max_epochs=5000, patience=50), k=20)
    >>> params.to_dict()["probe_params"]["max_epochs"]
    5000
    """

    probe: Any = field(
        default="gaussian",
        metadata={"help": "A probe object (scikit-learn style), or the name of one in PROBES."},
    )
    """A probe object, cloned for every cell so that each starts unfitted with the same
    hyperparameters; a name (``"gaussian"``, the default, or ``"latent"``) means that probe with
    its defaults."""
    criterion: str = field(
        default="mi",
        metadata={
            "help": "What greedy selection maximises on dev: normalised mutual information, "
            "accuracy or log-likelihood.",
            "choices": METRICS,
        },
    )
    k: int = field(default=50, metadata={"help": "Neurons to select.", "min": 1})
    n_permutations: int = field(
        default=1000,
        metadata={
            "help": "Permutations of the test labels for each cell's quality gate (its p-value's "
            "resolution is 1/(N+1)); 0: no gate.",
            "min": 0,
        },
    )
    gate_seed: int = field(
        default=0, metadata={"help": "Seed of the gate's permutations and of the resampled selections."}
    )
    n_resamples: int = field(
        default=1,
        metadata={
            "help": "Selections again on bootstrap resamples of the train words (and another probe "
            "seed), for each cell's reproducibility: the noise ceiling of overlap. 0: none.",
            "min": 0,
        },
    )

    def __post_init__(self) -> None:
        CellFilters.__post_init__(self)
        object.__setattr__(self, "probe", make_probe(self.probe))
        if self.criterion not in METRICS:
            raise ValueError(f"criterion must be one of {', '.join(METRICS)}, got {self.criterion!r}")
        if self.k < 1:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.n_permutations < 0:
            raise ValueError(f"n_permutations must be >= 0, got {self.n_permutations}")
        if self.n_resamples < 0:
            raise ValueError(f"n_resamples must be >= 0, got {self.n_resamples}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able parameters: the probe's name and hyperparameters, and the grid's own.

        ``seed`` repeats the probe's seed (None for a probe without randomness).
        """
        probe = describe_probe(self.probe)
        return {
            **probe,
            "seed": probe["probe_params"].get("seed"),
            "criterion": self.criterion,
            "k": self.k,
            "min_count": self.min_count,
            "min_values": self.min_values,
            "n_permutations": self.n_permutations,
            "gate_seed": self.gate_seed,
            "n_resamples": self.n_resamples,
        }

    @classmethod
    def from_dict(cls, parameters: Mapping[str, Any]) -> ProbeParams:
        """The parameters :meth:`to_dict` gave (as stored with results), rebuilt."""
        return cls(
            probe=make_probe(str(parameters["probe"]), **dict(parameters.get("probe_params") or {})),
            criterion=str(parameters["criterion"]),
            k=int(parameters["k"]),
            min_count=int(parameters["min_count"]),
            min_values=int(parameters["min_values"]),
            n_permutations=int(parameters.get("n_permutations", 0)),
            gate_seed=int(parameters.get("gate_seed", 0)),
            n_resamples=int(parameters.get("n_resamples", 0)),
        )

    def make_probe(self) -> Probe:
        """A fresh, unfitted copy of the probe for one cell."""
        return clone_probe(self.probe)


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
            rng = np.random.default_rng(cell_seed(params.gate_seed, step, layer, language, attribute))
            _probe_cell(cells[attribute], params, out, i, rng)
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


def _probe_cell(
    cell: CellData, params: ProbeParams, out: dict[str, np.ndarray], i: int, rng: np.random.Generator
) -> None:
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
    rho = getattr(probe, "rho_", None)
    if rho is not None:
        out["selected_rho"][i, :ranks] = np.asarray(rho)[selection.neurons]
        out["mean_rho"][i] = float(np.mean(rho))
    if params.n_permutations:
        X_test, y_test = cell.test
        _, out["gate_p"][i], out["gate_null_mi"][i] = permutation_test(
            probe.log_proba(X_test, selection.neurons),
            y_test,
            len(cell.values),
            n_permutations=params.n_permutations,
            rng=rng,
        )
    if params.n_resamples:
        out["self_overlap"][i] = reselect(cell, params, selection.neurons, rng)
    out["status"][i] = "done"


def reselect(cell: CellData, params: ProbeParams, neurons: np.ndarray, rng: np.random.Generator) -> float:
    """The mean overlap of ``neurons`` with the k neurons selected again ``params.n_resamples``
    times, each on a bootstrap resample of the cell's train words with a fresh probe (its seed
    moved on, for a probe that has one): how reproducible the cell's set is within its own
    language, the ceiling for its overlap with another language's. NaN if every resample
    misses a value."""
    X_train, y_train = cell.train
    found = []
    for r in range(params.n_resamples):
        rows = rng.integers(0, len(y_train), len(y_train))
        probe = params.make_probe()
        seed = probe.get_params(deep=False).get("seed")
        if isinstance(seed, int):
            probe.set_params(seed=seed + 1 + r)
        try:
            probe.fit(X_train[rows], y_train[rows], n_classes=len(cell.values))
        except ValueError:  # a value drawn fewer than twice
            continue
        again = select_neurons(
            probe, cell.dev, cell.test, k=params.k, criterion=params.criterion, n_values=len(cell.values)
        )
        found.append(len(set(again.neurons.tolist()) & set(neurons.tolist())) / len(neurons))
    return float(np.mean(found)) if found else float("nan")


def probe_job(
    store: Store,
    params: ProbeParams,
    *,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    attributes: Sequence[str] | None = None,
) -> SlabJob:
    """The probing grid of ``store`` as a :class:`~xalign.analysis.engine.SlabJob`: one slab per
    (step, layer, language), :func:`probe_slab` on each.

    The output spans the store's steps, layers and languages (so that it aligns with the store
    in a DataTree) and the attributes kept by the filters in at least one language (or
    ``attributes``); ``steps``, ``layers`` and ``languages`` choose the slabs to run.

    Raises
    ------
    ResultsError
        If ``params.k`` exceeds the store's neurons, no attribute passes the filters, or a
        chosen step, layer or language is not in the store.
    """
    try:
        check_selection_size(params.k, n_neurons=store.n_neurons)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None
    if attributes is None:
        attributes = grid_attributes(store, store.languages, params)
        if not attributes:
            raise ResultsError(
                f"no attribute passes the filters (>= {params.min_values} values with >= {params.min_count} "
                "words in each split) in any language; see xalign treebank-stats, or lower --min-count"
            )
    attributes = list(attributes)
    example = _empty(len(attributes), params.k)
    slab_dims = (dims.STEP, dims.LAYER, dims.LANGUAGE)
    coords = {
        dims.STEP: np.asarray(store.steps, dtype=np.int64),
        dims.LAYER: np.asarray(store.layers, dtype=np.int64),
        dims.LANGUAGE: np.asarray(store.languages, dtype=object),
        dims.ATTRIBUTE: np.asarray(attributes, dtype=object),
        dims.RANK: np.arange(params.k),
    }
    chosen = {dims.STEP: steps, dims.LAYER: layers, dims.LANGUAGE: languages}
    return SlabJob(
        kind="probe",
        location=store.location,
        parameters=params.to_dict(),
        slab_dims=slab_dims,
        coords=coords,
        selected={d: select_values(coords[d].tolist(), chosen[d]) for d in slab_dims},
        example=example,
        inner_dims={name: (dims.ATTRIBUTE, dims.RANK)[: value.ndim] for name, value in example.items()},
        function=probe_slab,
        args=(attributes, params),
        summarize=summarize_slab,
    )


def summarize_slab(out: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Cells probed and skipped in a slab, and the most words a cell dropped."""
    status = out["status"]
    return {
        "done": int((status == "done").sum()),
        "skipped": int(sum(str(s).startswith("skipped") for s in status)),
        "dropped": int(np.max(out["n_dropped"], initial=0)),
    }


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

    Nothing is read or computed until the caller computes the result; the values are those
    :func:`run_probe_grid` stores (the same :func:`probe_job`).

    Examples
    --------
    >>> store = xalign.open_store("runs/toy.zarr")
    >>> grid = probe_grid(store, params=ProbeParams(probe="gaussian", k=10), layers=[2])
    >>> grid["test_mi"].sel(rank=9).mean("attribute").compute()
    """
    return lazy_result(
        probe_job(store, params, steps=steps, layers=layers, languages=languages, attributes=attributes)
    )


def run_probe_grid(
    location: StoreLocation | Store,
    *,
    params: ProbeParams,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    attributes: Sequence[str] | None = None,
    name: str = "probe",
    client: Any = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    on_slab: Callable[[dict[str, int]], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> JobReport:
    """Probe the selected cells into ``results/<name>``, resumably (:func:`~xalign.analysis.engine.run_job`).

    Each slab's summary (``on_slab``, and the report's ``total("done")``, ``total("skipped")``,
    ``most("dropped")``) counts cells probed, cells skipped by the filters, and the most
    words a cell left out for lack of a vector.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(n_workers=2, threads_per_worker=1)  # yours: xalign uses it
    >>> run_probe_grid("runs/toy.zarr", params=ProbeParams(probe="gaussian", k=10))
    """
    store = location if isinstance(location, Store) else open_store(location)
    job = probe_job(store, params, steps=steps, layers=layers, languages=languages, attributes=attributes)
    return run_job(
        job,
        results_path(name),
        client=client,
        scheduler=scheduler,
        overwrite=overwrite,
        on_slab=on_slab,
        on_plan=on_plan,
    )


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
