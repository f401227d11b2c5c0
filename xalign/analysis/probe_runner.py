"""Run the probing grid into a store's results group, resumably, on any Dask scheduler.

:func:`~xalign.analysis.probing.probe_grid` gives the lazy results; this driver writes them
where they belong: it creates ``results/<name>`` once (from
:func:`~xalign.analysis.probing.grid_template`, which has no tasks), then runs one task per
(step, layer, language) slab still to do. Each task reads its slab, probes every attribute
and writes its own chunks and status, so the client never holds data and a rerun after an
interruption does only what is missing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xalign import dims
from xalign.analysis.probing import (
    ProbeParams,
    check_selection_size,
    grid_attributes,
    grid_template,
    probe_slab,
)
from xalign.parallel import active_client, check_scheduler, compute_tasks
from xalign.store.cache import task_arrays, task_store
from xalign.store.location import StoreLocation
from xalign.store.nodes import child_array
from xalign.store.results import ResultsError, prepare_results, results_path, write_region
from xalign.store.store import open_store
from xalign.store.write import consolidate

__all__ = ["GridReport", "run_probe_grid"]

logger = logging.getLogger(__name__)

FILL_VALUES = {"selected_neuron": -1, "status": "", "n_train": 0, "n_dev": 0, "n_test": 0, "n_dropped": 0}


@dataclass(frozen=True, kw_only=True, slots=True)
class GridReport:
    name: str
    slabs_run: int
    slabs_already_done: int
    """Of the slabs selected, those found done."""
    cells_done: int
    cells_skipped: int
    most_dropped: int = 0
    """The most words any probed cell left out for lack of a vector (``n_dropped``)."""


def run_probe_grid(
    location: StoreLocation,
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
) -> GridReport:
    """Probe the selected cells of the store at ``location`` into ``results/<name>``.

    One task per (step, layer, language) slab still to do, computed on ``client``, a local
    ``scheduler``, the active ``distributed.Client`` or Dask's default scheduler, in that
    order (:mod:`xalign.parallel`); nothing is started here.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(n_workers=2, threads_per_worker=1)  # yours: xalign uses it
    >>> run_probe_grid("runs/toy.zarr", params=ProbeParams(probe="gaussian", k=10))

    Raises
    ------
    ResultsError
        If ``results/<name>`` exists with other parameters or cells (unless ``overwrite``),
        or a process-based scheduler is asked for with a memory store.
    """
    check_scheduler(scheduler)
    target = active_client(client, scheduler)
    if (target is not None or scheduler == "processes") and not isinstance(location, str | Path):
        where = "a Dask cluster" if target is not None else "the processes scheduler"
        raise ResultsError(f"{where} needs a store on disk that its workers can open, not a memory store")
    store = open_store(location)
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
    # The results span the store's steps, layers and languages, so that they align with the
    # store's own coordinates (xarray's DataTree requires it); a selection only decides
    # which slabs this run fills. The template has no tasks: the slabs' tasks are made below
    # for the slabs still to do, so the driver's memory does not grow with the grid.
    template = grid_template(store, params=params, attributes=attributes)
    wanted = {
        dims.STEP: set(store.steps.tolist() if steps is None else steps),
        dims.LAYER: set(store.layers.tolist() if layers is None else layers),
        dims.LANGUAGE: set(store.languages if languages is None else languages),
    }
    for dim, chosen in wanted.items():
        unknown = chosen - {v.item() if hasattr(v, "item") else v for v in template[dim].values}
        if unknown:
            raise ResultsError(f"{dim} {sorted(unknown)} not in the store")
    fills: dict[str, Any] = {str(var): FILL_VALUES.get(str(var), np.nan) for var in template.data_vars}
    group = prepare_results(
        location,
        name,
        template,
        chunks={dims.STEP: 1, dims.LAYER: 1, dims.LANGUAGE: 1},
        fill_values=fills,
        overwrite=overwrite,
    )
    status = np.asarray(child_array(group, "status")[...], dtype=object)
    attribute_list = [str(a) for a in template[dims.ATTRIBUTE].values]
    todo, done = [], 0
    for s, step in enumerate(template[dims.STEP].values):
        for l_, layer in enumerate(template[dims.LAYER].values):
            for g, language in enumerate(template[dims.LANGUAGE].values):
                selected = (
                    int(step) in wanted[dims.STEP]
                    and int(layer) in wanted[dims.LAYER]
                    and str(language) in wanted[dims.LANGUAGE]
                )
                if not selected:
                    continue
                if (status[s, l_, g] == "").any():
                    todo.append(((s, l_, g), int(step), int(layer), str(language)))
                else:
                    done += 1
    if on_plan is not None:
        on_plan(len(todo))
    from dask.delayed import delayed

    run = uuid.uuid4().hex  # the tasks of this run share one opened store per worker
    tasks = [
        delayed(_run_slab, pure=False)(
            store.location, run, name, index, step, layer, language, attribute_list, params
        )
        for index, step, layer, language in todo
    ]
    summaries = compute_tasks(tasks, client=target, scheduler=scheduler, on_done=on_slab)
    consolidate(location)
    return GridReport(
        name=name,
        slabs_run=len(todo),
        slabs_already_done=done,
        cells_done=sum(s["done"] for s in summaries),
        cells_skipped=sum(s["skipped"] for s in summaries),
        most_dropped=max((s["dropped"] for s in summaries), default=0),
    )


def _run_slab(
    location: StoreLocation,
    run: str,
    name: str,
    index: tuple[int, int, int],
    step: int,
    layer: int,
    language: str,
    attributes: list[str],
    params: ProbeParams,
) -> dict[str, int]:
    """One task: probe a slab, write its chunks (status last, so a kill leaves it to redo).

    The task names the store by location, not as an opened :class:`Store` (which would carry
    all its labels in every task spec a worker keeps); it opens it through the per-worker cache
    of the run (:func:`~xalign.store.cache.task_store`), once per worker, unvalidated.
    """
    out = probe_slab(task_store(location, run), step, layer, language, attributes, params)
    arrays = task_arrays(location, results_path(name), run)
    status = out.pop("status")
    write_region(arrays, index, out)
    write_region(arrays, index, {"status": status})
    logger.debug("probed step %s layer %s %s", step, layer, language)
    return {
        "done": int((status == "done").sum()),
        "skipped": int(sum(str(s).startswith("skipped") for s in status)),
        "dropped": int(out["n_dropped"].max(initial=0)),
    }
