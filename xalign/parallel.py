"""Run independent Dask tasks where the caller computes, reporting each as it finishes.

xalign's library starts no cluster, as Dask libraries do not: a function that runs tasks takes
``client=None`` and ``scheduler=None`` and computes

- on ``client`` (a ``distributed.Client``) when one is given;
- else on Dask's local ``scheduler`` named (``threads``, ``processes`` or ``sync``);
- else on the active ``distributed.Client`` (the one a notebook made last), if there is one;
- else on Dask's current default scheduler (threads, unless ``dask.config`` says otherwise).

Starting a ``LocalCluster`` for ``--scheduler local:N``, or connecting to ``tcp://host:port``,
is the command line's job (:mod:`xalign.cli.cluster`).

On a cluster, a worker that dies (killed, out of memory) loses only its tasks in flight and
the results it holds that have not yet reached the client: the scheduler runs those again on a
worker that lives (up to ``distributed.scheduler.allowed-failures`` times each), so every task
given here must be safe to run twice, as the writers of xalign's tasks are (each writes chunks
it alone owns, its done flag last).
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xalign.errors import XalignError

__all__ = [
    "LOCAL_SCHEDULERS",
    "ProgressRelay",
    "SchedulerError",
    "active_client",
    "check_scheduler",
    "compute_tasks",
]

LOCAL_SCHEDULERS = ("threads", "processes", "sync")


class SchedulerError(XalignError, ValueError):
    """A scheduler name that xalign cannot use."""


def check_scheduler(scheduler: str | None) -> str | None:
    """Validate the name of a local Dask scheduler (or None); returns it unchanged."""
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return scheduler
    if scheduler.startswith(("local:", "tcp://", "tls://")):
        raise SchedulerError(
            f"xalign's functions start no cluster ({scheduler!r}): start one yourself "
            "(client = distributed.Client(distributed.LocalCluster()) or distributed.Client('tcp://...')) "
            "and pass client=client, or leave it active; the command line's --scheduler does this"
        )
    raise SchedulerError(f"unknown scheduler {scheduler!r}: use threads, processes or sync, or pass a client")


def active_client(client: Any = None, scheduler: str | None = None) -> Any:
    """The ``distributed.Client`` tasks will run on: ``client``, else the active one unless a
    local ``scheduler`` is named; None when they run on a local scheduler."""
    if client is not None or scheduler is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:  # no client is active
        return None


def compute_tasks(
    tasks: Sequence[Any],
    *,
    client: Any = None,
    scheduler: str | None = None,
    on_done: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Compute Dask delayed ``tasks`` (see the module's doc for where); call ``on_done(result)``
    as each one finishes. Results come back in the order of ``tasks``.
    """
    check_scheduler(scheduler)
    if not tasks:
        return []
    target = active_client(client, scheduler)
    if target is None:
        return _compute_locally(tasks, scheduler, on_done)
    from distributed import as_completed

    futures = target.compute(list(tasks))
    position = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    pending = as_completed(futures)
    # Only `pending` holds the futures from here on: each is released once its result is
    # here, so a worker that dies later costs only its tasks in flight. (A future still held
    # would make the scheduler recompute every result the dead worker had kept.)
    del futures
    for future in pending:
        results[position[future.key]] = future.result()
        future.release()
        if on_done is not None:
            on_done(results[position[future.key]])
    return results


def _compute_locally(
    tasks: Sequence[Any], scheduler: str | None, on_done: Callable[[Any], None] | None
) -> list[Any]:
    from dask.base import compute
    from dask.callbacks import Callback

    keys = {task.key for task in tasks}

    class _Report(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if on_done is not None and key in keys:
                on_done(result)

    with _Report():  # type: ignore[no-untyped-call]
        chosen = {} if scheduler is None else {"scheduler": scheduler}
        return list(compute(*tasks, **chosen))


class ProgressRelay:
    """Progress from tasks running on a cluster's workers, heard here as it happens.

    A task that reports progress as it goes (``report(amount, *extra)``, e.g. words done and
    bytes written) gets ``relay.reporter(job)``: on a worker it sends each report as a
    Dask event (``Worker.log_event``) that the client hears (``Client.subscribe_topic``)
    and hands to ``callback(amount, *extra)``. Events can arrive after a task's result (or be
    lost with a worker that dies); ``relay.finished(job, amount)`` when the result is here
    makes the job's total exact and drops its late events.

    Use it as a context manager: it subscribes on entering and unsubscribes on leaving.
    """

    def __init__(self, client: Any, callback: Callable[..., None]) -> None:
        self.client = client
        self.callback = callback
        self.topic = f"xalign-progress-{uuid.uuid4().hex}"
        self._heard: defaultdict[Any, int] = defaultdict(int)
        self._finished: set[Any] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressRelay:
        self.client.subscribe_topic(self.topic, self._on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.unsubscribe_topic(self.topic)

    def reporter(self, job: Any) -> _Reporter:
        """The ``report`` callable to give the task of ``job`` (picklable)."""
        return _Reporter(self.topic, job)

    def finished(self, job: Any, amount: int, *extra: Any) -> None:
        """``job`` is done, having done ``amount`` in all: report what its events did not."""
        with self._lock:
            self._finished.add(job)
            missing = amount - self._heard[job]
            self._heard[job] = amount
        if missing > 0:
            self.callback(missing, *extra)

    def _on_event(self, event: tuple[float, Any]) -> None:
        _, (job, amount, *extra) = event
        with self._lock:
            if job in self._finished:
                return
            self._heard[job] += amount
        self.callback(amount, *extra)


@dataclass(frozen=True)
class _Reporter:
    topic: str
    job: Any

    def __call__(self, amount: int, *extra: Any) -> None:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a worker (a local scheduler ran the task): nobody listens
            return
        worker.log_event(self.topic, [self.job, amount, *extra])
