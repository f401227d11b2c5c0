"""Run independent Dask tasks on the scheduler a user names, reporting each as it finishes.

One code path for every place the work runs: ``threads`` (default), ``processes`` and
``sync`` use Dask's local schedulers; ``local:N`` starts a ``distributed.LocalCluster`` of
N single-threaded worker processes; ``tcp://host:port`` uses a running cluster (its workers
must see the same files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xalign.errors import XalignError

__all__ = ["SchedulerError", "check_scheduler", "compute_tasks"]

_LOCAL = ("threads", "processes", "sync")


class SchedulerError(XalignError, ValueError):
    """A scheduler name that xalign cannot use."""


def check_scheduler(spec: str) -> str:
    """Validate a scheduler name; returns it unchanged."""
    if spec in _LOCAL or spec.startswith("tcp://") or spec.startswith("tls://"):
        return spec
    if spec.startswith("local:") and spec[6:].isdigit() and int(spec[6:]) > 0:
        return spec
    raise SchedulerError(
        f"unknown scheduler {spec!r}: use threads, processes, sync, local:N (N workers) or tcp://host:port"
    )


def compute_tasks(
    tasks: Sequence[Any], *, scheduler: str = "threads", on_done: Callable[[Any], None] | None = None
) -> list[Any]:
    """Compute Dask delayed ``tasks``; call ``on_done(result)`` as each one finishes.

    Results come back in the order of ``tasks``.
    """
    check_scheduler(scheduler)
    if not tasks:
        return []
    if scheduler in _LOCAL:
        from dask.base import compute
        from dask.callbacks import Callback

        keys = {task.key for task in tasks}

        class _Report(Callback):
            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                if on_done is not None and key in keys:
                    on_done(result)

        with _Report():  # type: ignore[no-untyped-call]
            return list(compute(*tasks, scheduler=scheduler))
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler.startswith("local:"):
        cluster = LocalCluster(n_workers=int(scheduler[6:]), threads_per_worker=1, processes=True)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.compute(list(tasks))
        position = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            results[position[future.key]] = future.result()
            if on_done is not None:
                on_done(results[position[future.key]])
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
