"""Run independent Dask tasks on the scheduler a user names, reporting each as it finishes.

One code path for every place the work runs: ``threads`` (default), ``processes`` and
``sync`` use Dask's local schedulers; ``local:N`` starts a ``distributed.LocalCluster`` of
N single-threaded worker processes; ``tcp://host:port`` uses a running cluster (its workers
must see the same files).

The memory each ``local:N`` worker may use is the Dask config value
``xalign.worker-memory-limit`` (default ``"auto"``: the machine's memory shared out among the
workers), e.g. ``DASK_XALIGN__WORKER_MEMORY_LIMIT=1GiB`` in the environment; a worker that
goes beyond 95% of it is restarted by its nanny. A worker that dies (killed, out of memory)
loses only its tasks in flight: the scheduler runs them again on a worker that lives (up to
``distributed.scheduler.allowed-failures`` times each), so every task given here must be
safe to run twice, as the writers of xalign's tasks are (each writes chunks it alone owns,
its done flag last).

``local:N`` workers run without Dask's statistical profiler unless the config value
``xalign.worker-profile`` is true: the profiler keeps a tree of call stacks for every second
of work (up to ``distributed.admin.low-level-log-length`` seconds), which grew a probing
worker by about 0.25 MiB per slab, where the work itself stays flat
(``benchmarks/outofcore.py``). Turn it on to see the dashboard's profile page.
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


def _flag(value: Any) -> bool:
    """A config flag: ``True``/``False``, or their spelling in an environment variable."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


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
        import dask.config

        profile = _flag(dask.config.get("xalign.worker-profile", False))
        # The nannies hand the config of this moment to the worker processes they start.
        with dask.config.set({"distributed.worker.profile.enabled": profile}):
            cluster = LocalCluster(
                n_workers=int(scheduler[6:]),
                threads_per_worker=1,
                processes=True,
                memory_limit=dask.config.get("xalign.worker-memory-limit", "auto"),
            )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.compute(list(tasks))
        position = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        pending = as_completed(futures)
        # Only `pending` holds the futures from here on: each is released once its result is
        # here, so a worker that dies later costs only its tasks in flight. (A future still
        # held would make the scheduler recompute every result the dead worker had kept.)
        del futures
        for future in pending:
            results[position[future.key]] = future.result()
            future.release()
            if on_done is not None:
                on_done(results[position[future.key]])
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
