"""One engine for every analysis that maps over slabs of a store: lazily, or into the store.

An analysis that reads the store slab by slab (probing maps over (step, layer, language),
transfer over (step, layer)) declares a :class:`SlabJob`: its parameters, the slab dims and
the values to run, its slab function, and one slab's output as it reads before it is
computed (dtypes, shapes, fill values, the dims after the slab dims). From that one
declaration:

- :func:`lazy_result` gives the result as a lazy ``xr.Dataset`` (one Dask task per slab; the
  graph is built in constant time, whatever the number of slabs);
- :func:`run_job` writes it into the store, resumably: the output group is laid out once,
  then one task per slab still to do computes the same slab function, writes its own chunks
  and its ``status`` last, so a rerun does only what is missing and an interrupted run ends
  identical to an uninterrupted one; other parameters are refused.

Both call the same slab function on the same store, so the lazy and the stored values agree
(tests compare them). Tasks name the store by location and open it once per worker and run
(:mod:`xalign.store.cache`), and compute where the caller computes (:mod:`xalign.parallel`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xalign.parallel import active_client, check_scheduler, compute_tasks
from xalign.store.cache import task_arrays, task_store
from xalign.store.location import StoreLocation, is_shared
from xalign.store.nodes import child_array
from xalign.store.outputs import ResultsError, mark_current, prepare_output, write_region
from xalign.store.write import consolidate

__all__ = ["JobReport", "SlabFunction", "SlabJob", "lazy_result", "run_job", "select_values"]

logger = logging.getLogger(__name__)

SlabFunction = Callable[..., Mapping[str, np.ndarray]]
"""``function(store, *key, *args)``: one slab's output arrays by name, ``status`` among them."""

STATUS = "status"
"""The variable each slab writes last: '' until done, then 'done' or 'skipped: <why>'."""


@dataclass(frozen=True, kw_only=True)
class SlabJob:
    """An analysis mapped over slabs of a store, declared once (see the module's doc).

    ``coords`` span the whole output (the slab dims over the store's full extent, so the
    output aligns with the store in a DataTree); ``selected`` says which slabs this run does.
    """

    kind: str
    location: StoreLocation
    parameters: Mapping[str, Any]
    slab_dims: tuple[str, ...]
    coords: Mapping[str, np.ndarray]
    selected: Mapping[str, tuple[Any, ...]]
    example: Mapping[str, np.ndarray]
    """One slab's output before it is computed: dtype, shape and fill value of each variable."""
    inner_dims: Mapping[str, tuple[str, ...]]
    """The dims of each variable after the slab dims."""
    function: SlabFunction
    args: tuple[Any, ...] = ()
    summarize: Callable[[Mapping[str, np.ndarray]], dict[str, int]] | None = None
    """What a task reports of its slab (e.g. cells done); None: nothing."""
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if STATUS not in self.example:
            raise ValueError(f"a slab job's output must have a {STATUS!r} variable")
        for dim in self.slab_dims:
            values = self.coords[dim].tolist()
            unknown = [v for v in self.selected[dim] if v not in values]
            if unknown:
                raise ResultsError(f"{dim} {sorted(unknown)} not in the store")

    @property
    def fill_values(self) -> dict[str, Any]:
        """What each variable reads before its slab is written."""
        return {name: _fill(example) for name, example in self.example.items()}

    def slabs(self) -> list[tuple[tuple[int, ...], tuple[Any, ...]]]:
        """(index in the output, key) of every selected slab, in coordinate order."""
        positions = []
        for dim in self.slab_dims:
            chosen = set(self.selected[dim])
            positions.append([(i, v) for i, v in enumerate(self.coords[dim].tolist()) if v in chosen])
        return [(tuple(i for i, _ in combo), tuple(v for _, v in combo)) for combo in product(*positions)]

    def template(self) -> xr.Dataset:
        """The whole output with no tasks: one lazy chunk of zeros per variable."""
        import dask.array as da

        outer = tuple(len(self.coords[d]) for d in self.slab_dims)
        variables = {
            name: (
                (*self.slab_dims, *self.inner_dims[name]),
                da.zeros(outer + example.shape, dtype=example.dtype, chunks=-1),
            )
            for name, example in self.example.items()
        }
        return xr.Dataset(variables, coords=dict(self.coords), attrs=self._attrs())

    def _attrs(self) -> dict[str, Any]:
        return {**self.attrs, "kind": self.kind, "parameters": dict(self.parameters)}


def _fill(example: np.ndarray) -> Any:
    if example.dtype == object:
        return ""
    value = example.reshape(-1)[0] if example.size else np.zeros((), example.dtype)
    return value.item()


@dataclass(frozen=True, kw_only=True, slots=True)
class JobReport:
    """What :func:`run_job` did."""

    path: str
    slabs_run: int
    slabs_already_done: int
    """Of the slabs selected, those found done."""
    summaries: tuple[dict[str, int], ...]
    """What each slab run reported (the job's ``summarize``)."""

    def total(self, key: str) -> int:
        return sum(s.get(key, 0) for s in self.summaries)

    def most(self, key: str) -> int:
        return max((s.get(key, 0) for s in self.summaries), default=0)


def lazy_result(job: SlabJob) -> xr.Dataset:
    """The job's output over the selected slabs, as a lazy Dataset with one task per slab."""
    import dask.array as da

    run = f"lazy-{_token(job)}"
    shape = tuple(len(job.selected[d]) for d in job.slab_dims)
    keys = np.empty(shape, dtype=object)
    for (_, key), position in zip(job.slabs(), np.ndindex(*shape), strict=True):
        keys[position] = key
    key_blocks = da.from_array(keys, chunks=(1,) * len(shape))
    blocks = da.map_blocks(
        _slab_block,
        key_blocks,
        job.location,
        run,
        job.function,
        job.args,
        dtype=object,
        meta=np.empty((0,) * len(shape), dtype=object),
        name=f"{job.kind}-slab-{_token(job)}",
    )
    variables = {}
    for name, example in job.example.items():
        inner = tuple(range(len(shape), len(shape) + example.ndim))
        data = da.map_blocks(
            _pick,
            blocks,
            name,
            dtype=example.dtype,
            new_axis=list(inner) or None,
            chunks=(*blocks.chunks, *((n,) for n in example.shape)),
            meta=np.empty((0,) * (len(shape) + example.ndim), dtype=example.dtype),
        )
        variables[name] = ((*job.slab_dims, *job.inner_dims[name]), data)
    coords = {
        dim: (
            np.asarray(
                [v for v in job.coords[dim].tolist() if v in set(job.selected[dim])],
                dtype=job.coords[dim].dtype,
            )
            if dim in job.slab_dims
            else job.coords[dim]
        )
        for dim in job.coords
    }
    return xr.Dataset(variables, coords=coords, attrs=job._attrs())


def _token(job: SlabJob) -> str:
    from dask.base import tokenize

    return tokenize(
        job.kind,
        str(job.location) if isinstance(job.location, str | Path) else id(job.location),
        job.parameters,
        job.args,
        {d: job.selected[d] for d in job.slab_dims},
    )


def _slab_block(
    keys: np.ndarray, location: StoreLocation, run: str, function: SlabFunction, args: tuple[Any, ...]
) -> np.ndarray:
    """One lazy task: the slab function on the slab named by the block's one key."""
    out = np.empty(keys.shape, dtype=object)
    out.reshape(-1)[0] = dict(function(task_store(location, run), *keys.reshape(-1)[0], *args))
    return out


def _pick(block: np.ndarray, name: str) -> np.ndarray:
    value = np.asarray(block.reshape(-1)[0][name])
    return value.reshape(block.shape + value.shape)


def run_job(
    job: SlabJob,
    path: str,
    *,
    client: Any = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    on_slab: Callable[[dict[str, int]], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> JobReport:
    """Write the job's output into its store at ``path``, running only the slabs still to do.

    One task per slab, on ``client``, a local ``scheduler``, the active ``distributed.Client``
    or Dask's default scheduler, in that order (:mod:`xalign.parallel`); nothing is started
    here. ``on_plan(n)`` is told the number of slabs to run; ``on_slab(summary)`` hears of
    each as it finishes.

    Raises
    ------
    ResultsError
        If the output exists with other parameters or coordinates (unless ``overwrite``), or a
        cluster or the processes scheduler is asked for with a store in memory.
    """
    check_scheduler(scheduler)
    target = active_client(client, scheduler)
    location = job.location
    if (target is not None or scheduler == "processes") and not is_shared(location):
        where = "a Dask cluster" if target is not None else "the processes scheduler"
        raise ResultsError(f"{where} needs a store on disk that its workers can open, not a memory store")
    group = prepare_output(
        location,
        path,
        job.template(),
        chunks=dict.fromkeys(job.slab_dims, 1),
        fill_values=job.fill_values,
        overwrite=overwrite,
    )
    status = np.asarray(child_array(group, STATUS)[...], dtype=object)
    inner = tuple(range(len(job.slab_dims), status.ndim))
    unfinished = (status == "").any(axis=inner) if inner else status == ""
    todo = [(index, key) for index, key in job.slabs() if unfinished[index]]
    done = len(job.slabs()) - len(todo)
    if on_plan is not None:
        on_plan(len(todo))
    from dask.delayed import delayed

    run = uuid.uuid4().hex  # the tasks of this run share one opened store per worker
    tasks = [
        delayed(_run_slab, pure=False)(location, run, path, index, key, job.function, job.args, job.summarize)
        for index, key in todo
    ]
    summaries = compute_tasks(tasks, client=target, scheduler=scheduler, on_done=on_slab)
    status = np.asarray(child_array(group, STATUS)[...], dtype=object)
    if not (status == "").any():
        mark_current(location, path)
    consolidate(location)
    return JobReport(path=path, slabs_run=len(todo), slabs_already_done=done, summaries=tuple(summaries))


def _run_slab(
    location: StoreLocation,
    run: str,
    path: str,
    index: tuple[int, ...],
    key: tuple[Any, ...],
    function: SlabFunction,
    args: tuple[Any, ...],
    summarize: Callable[[Mapping[str, np.ndarray]], dict[str, int]] | None,
) -> dict[str, int]:
    """One task: compute a slab, write its chunks, status last (a kill leaves it to redo).

    The task names the store by location, not as an opened store (which would carry all its
    labels in every task spec a worker keeps), and opens it through the per-worker cache of
    the run (:func:`~xalign.store.cache.task_store`), once per worker, unvalidated.
    """
    out = dict(function(task_store(location, run), *key, *args))
    arrays = task_arrays(location, path, run)
    status = out.pop(STATUS)
    write_region(arrays, index, out)
    write_region(arrays, index, {STATUS: status})
    logger.debug("%s: wrote slab %s", path, key)
    return {} if summarize is None else summarize({**out, STATUS: status})


def select_values(values: Sequence[Any], chosen: Sequence[Any] | None) -> tuple[Any, ...]:
    """``chosen`` (in the order of ``values``), or all of ``values``."""
    if chosen is None:
        return tuple(values)
    wanted = set(chosen)
    missing = wanted - set(values)
    return tuple(v for v in values if v in wanted) + tuple(sorted(missing, key=str))
