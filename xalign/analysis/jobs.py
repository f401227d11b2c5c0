"""From a store to its analysis groups: the jobs behind ``xalign overlap/transfer/correlate/similarity``.

Each job opens the store, builds its analysis from the pure functions of this package, leaves
out flagged checkpoints when asked (their values become NaN and the steps are recorded in the
parameters), and writes ``analyses/<kind>/<name>``. A job asked again with the same parameters
reuses what is stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.correlation import correlate_cells, transfer_cells
from xalign.analysis.health import checkpoint_health, flagged_steps
from xalign.analysis.overlap import overlap
from xalign.analysis.probing import check_selection_size
from xalign.analysis.similarity import parallel_similarity
from xalign.analysis.transfer import (
    PAIR_DIMS,
    TransferParams,
    pair_coords,
    transfer_attributes,
    transfer_slab,
)
from xalign.analysis.transfer_scores import read_transfer_scores
from xalign.parallel import check_scheduler, compute_tasks
from xalign.store.analyses import AnalysisKind, open_analysis, stored_parameters, write_analysis
from xalign.store.cache import task_store
from xalign.store.location import StoreLocation
from xalign.store.results import ResultsError, open_results
from xalign.store.store import Store, open_store

__all__ = [
    "PREFERRED_SOURCE",
    "AnalysisOutcome",
    "TransferSource",
    "choose_source",
    "describe_choice",
    "excluded_steps",
    "import_transfer_scores",
    "load_transfer",
    "run_correlation",
    "run_overlap",
    "run_similarity",
    "run_transfer",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisOutcome:
    """What a job did: the group it wrote (or found), and the analysis itself, in memory."""

    kind: AnalysisKind
    name: str
    written: bool
    """False when the same analysis was already stored and was reused."""
    result: xr.Dataset
    excluded: tuple[int, ...]


def excluded_steps(store: Store, exclude_flagged: bool) -> tuple[int, ...]:
    """The flagged steps of ``store`` when excluding them, else none."""
    return tuple(flagged_steps(checkpoint_health(store))) if exclude_flagged else ()


def _mask_steps(ds: xr.Dataset, steps: Sequence[int]) -> xr.Dataset:
    """NaN at ``steps`` in every float variable that runs along step."""
    if not steps:
        return ds
    keep = xr.DataArray(~np.isin(ds[dims.STEP].values, np.asarray(steps)), dims=(dims.STEP,))
    return ds.assign(
        {
            name: var.where(keep)
            for name, var in ds.data_vars.items()
            if dims.STEP in var.dims and np.issubdtype(var.dtype, np.floating)
        }
    )


PREFERRED_SOURCE = "en"
"""The source language when none is given and the store has it (the reference's)."""


def choose_source(languages: Sequence[str], source: str | None, *, what: str = "source") -> tuple[str, bool]:
    """The language transfer (or similarity) starts from, and whether it was chosen by default.

    ``source`` if given (it must be one of ``languages``); otherwise English where the store
    has it, else the first of ``languages``.

    Raises
    ------
    ResultsError
        If ``source`` is not among ``languages``, or there are none.
    """
    if not languages:
        raise ResultsError(f"no languages to choose a {what} language from")
    if source is not None:
        if source not in languages:
            raise ResultsError(
                f"the {what} language {source!r} is not in the store; it has {', '.join(languages)}"
            )
        return source, False
    return (PREFERRED_SOURCE if PREFERRED_SOURCE in languages else languages[0]), True


def describe_choice(language: str, defaulted: bool, *, what: str = "source", option: str = "--source") -> str:
    """One line saying which language an analysis starts from, and how it was chosen."""
    if not defaulted:
        return f"{what} language: {language}"
    why = "the default" if language == PREFERRED_SOURCE else f"the store has no {PREFERRED_SOURCE}"
    return f"{what} language: {language} ({why}; choose another with {option})"


def _store_and_plan(location: StoreLocation, exclude_flagged: bool) -> tuple[Store, tuple[int, ...]]:
    store = open_store(location)
    return store, excluded_steps(store, exclude_flagged)


def _write(
    location: StoreLocation,
    kind: AnalysisKind,
    name: str,
    result: xr.Dataset,
    parameters: dict[str, Any],
    excluded: tuple[int, ...],
    overwrite: bool,
) -> AnalysisOutcome:
    result.attrs = {**result.attrs, "parameters": {**parameters, "excluded_steps": list(excluded)}}
    written = write_analysis(location, kind, name, result, overwrite=overwrite)
    return AnalysisOutcome(
        kind=kind, name=name, written=written, result=open_analysis(location, kind, name), excluded=excluded
    )


def run_overlap(
    location: StoreLocation,
    *,
    probe: str = "probe",
    k: int | None = None,
    name: str | None = None,
    exclude_flagged: bool = False,
    overwrite: bool = False,
) -> AnalysisOutcome:
    """Overlap of the top-k neuron sets of ``results/<probe>`` into ``analyses/overlap/<name>``.

    ``k`` defaults to the selection size; ``name`` to ``probe``.
    """
    store, excluded = _store_and_plan(location, exclude_flagged)
    group = open_results(location, probe)
    if group is None:
        raise ResultsError(f"no probing results named {probe!r} in the store; run xalign probe first")
    results = store.tree[f"results/{probe}"].to_dataset()
    n_neurons = store.n_neurons
    # Ranks past the neuron count (a selection asked for more neurons than there are) hold no neuron.
    selection = min(int(results.sizes[dims.RANK]), n_neurons)
    k = selection if k is None else k
    try:
        check_selection_size(k, n_neurons=n_neurons, selection=selection)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None
    pairs = overlap(results["selected_neuron"], k=k, n_neurons=n_neurons).transpose(*PAIR_DIMS)
    parameters = {"probe": probe, "k": k, "n_neurons": n_neurons, "chance": k / n_neurons}
    return _write(
        location, "overlap", name or probe, _mask_steps(pairs, excluded), parameters, excluded, overwrite
    )


def run_similarity(
    location: StoreLocation,
    *,
    reference: str | None = None,
    name: str = "parallel",
    exclude_flagged: bool = False,
    overwrite: bool = False,
) -> AnalysisOutcome:
    """Parallel-sentence similarity with ``reference`` into ``analyses/similarity/<name>``.

    ``reference`` defaults as :func:`choose_source` says (English where the store has it).
    """
    store, excluded = _store_and_plan(location, exclude_flagged)
    reference, _ = choose_source(store.languages, reference, what="reference")
    result = _mask_steps(parallel_similarity(store, reference=reference), excluded)
    return _write(location, "similarity", name, result, {"reference": reference}, excluded, overwrite)


def run_transfer(
    location: StoreLocation,
    *,
    params: TransferParams,
    name: str = "linear",
    languages: Sequence[str] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    exclude_flagged: bool = False,
    overwrite: bool = False,
    on_slab: Callable[[Any], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> AnalysisOutcome:
    """Zero-shot linear transfer between every pair of languages into ``analyses/transfer/<name>``.

    One task per (step, layer) slab, on ``client``, a local ``scheduler``, the active
    ``distributed.Client`` or Dask's default scheduler (see :mod:`xalign.parallel`).
    """
    check_scheduler(scheduler)
    store, excluded = _store_and_plan(location, exclude_flagged)
    languages = list(store.languages if languages is None else languages)
    attributes = list(params.attributes or transfer_attributes(store, languages, params))
    if not attributes:
        raise ResultsError("no attribute passes the filters in any language; lower --min-count")
    parameters = {**params.to_dict(), "attributes": attributes}
    if not overwrite and stored_parameters(location, "transfer", name) == {
        **parameters,
        "excluded_steps": list(excluded),
    }:
        return AnalysisOutcome(
            kind="transfer",
            name=name,
            written=False,
            result=open_analysis(location, "transfer", name),
            excluded=excluded,
        )
    from dask.delayed import delayed

    slabs = [
        (int(step), int(layer)) for step in store.steps if int(step) not in excluded for layer in store.layers
    ]
    if on_plan is not None:
        on_plan(len(slabs))
    run = uuid.uuid4().hex  # the tasks of this run share one opened store per worker
    tasks = [
        delayed(_transfer_task, pure=True)(location, run, step, layer, languages, attributes, params)
        for step, layer in slabs
    ]
    outputs = compute_tasks(tasks, client=client, scheduler=scheduler, on_done=on_slab)
    result = _assemble_transfer(store, languages, attributes, dict(zip(slabs, outputs, strict=True)))
    return _write(location, "transfer", name, result, parameters, excluded, overwrite)


def _transfer_task(
    location: StoreLocation,
    run: str,
    step: int,
    layer: int,
    languages: list[str],
    attributes: list[str],
    params: TransferParams,
) -> dict[str, np.ndarray]:
    """One task: :func:`transfer_slab` on the run's store, opened once per worker (see the probe
    runner's ``_run_slab``)."""
    return transfer_slab(task_store(location, run), step, layer, languages, attributes, params)


def _assemble_transfer(
    store: Store,
    languages: list[str],
    attributes: list[str],
    outputs: dict[tuple[int, int], dict[str, np.ndarray]],
) -> xr.Dataset:
    steps, layers = store.steps.tolist(), store.layers.tolist()
    shape = (len(steps), len(layers), len(attributes), len(languages), len(languages))
    arrays: dict[str, np.ndarray] = {
        "accuracy": np.full(shape, np.nan, dtype=np.float32),
        "baseline": np.full(shape, np.nan, dtype=np.float32),
        "n_test": np.zeros(shape, dtype=np.int64),
    }
    for (step, layer), out in outputs.items():
        for name, array in arrays.items():
            array[steps.index(step), layers.index(layer)] = out[name]
    return xr.Dataset(
        {name: (PAIR_DIMS, array) for name, array in arrays.items()},
        coords=pair_coords(steps, layers, attributes, languages),
    )


def import_transfer_scores(
    location: StoreLocation,
    path: Path,
    *,
    name: str | None = None,
    model: str | None = None,
    exclude_flagged: bool = False,
    overwrite: bool = False,
) -> AnalysisOutcome:
    """Import a file of transfer scores into ``analyses/transfer_scores/<name>`` (default: file stem)."""
    store, excluded = _store_and_plan(location, exclude_flagged)
    scores = read_transfer_scores(path, steps=store.revisions, languages=store.languages, model=model)
    result = _mask_steps(scores.to_dataset(name="score"), excluded)
    parameters = {
        "file": str(path),
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "model": model or "",
    }
    return _write(
        location, "transfer_scores", name or Path(path).stem, result, parameters, excluded, overwrite
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferSource:
    """Which transfer to correlate with: a built-in analysis, or one task of imported scores."""

    name: str
    task: str | None = None
    """The task of imported scores; None for built-in transfer."""

    def describe(self) -> str:
        return f"transfer_scores/{self.name}:{self.task}" if self.task else f"transfer/{self.name}"


def load_transfer(location: StoreLocation, source: TransferSource) -> xr.DataArray:
    """The transfer array of ``source``: accuracy (built-in) or one task's scores (imported)."""
    if source.task is None:
        return open_analysis(location, "transfer", source.name)["accuracy"]
    scores = open_analysis(location, "transfer_scores", source.name)["score"]
    tasks = [str(t) for t in scores[dims.TASK].values]
    if source.task not in tasks:
        raise ResultsError(
            f"transfer_scores/{source.name} has no task {source.task!r}; it has {', '.join(tasks)}"
        )
    return scores.sel({dims.TASK: source.task}, drop=True)


def run_correlation(
    location: StoreLocation,
    *,
    overlap_name: str = "probe",
    transfer: TransferSource,
    source: str | None = None,
    name: str | None = None,
    exclude_flagged: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    overwrite: bool = False,
) -> AnalysisOutcome:
    """Correlate overlap with transfer over (step, language) cells into ``analyses/correlation/<name>``.

    ``source`` defaults as :func:`choose_source` says (English where the overlap has it); the
    one used is in the result's parameters.
    """
    _, excluded = _store_and_plan(location, exclude_flagged)
    overlap_result = open_analysis(location, "overlap", overlap_name)
    source, _ = choose_source([str(v) for v in overlap_result[dims.LANGUAGE].values], source)
    cells = transfer_cells(overlap_result, load_transfer(location, transfer), source=source)
    result = correlate_cells(cells, exclude_steps=excluded, n_boot=n_boot, confidence=confidence, seed=seed)
    parameters = {
        "overlap": overlap_name,
        "transfer": transfer.describe(),
        "source": source,
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
    }
    default = f"{overlap_name}-{transfer.name}" + (f"-{transfer.task}" if transfer.task else "")
    return _write(location, "correlation", name or default, result, parameters, excluded, overwrite)
