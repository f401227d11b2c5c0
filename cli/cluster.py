"""``--scheduler``: where the command line computes, a cluster started or reached here.

The library computes where its caller says (:mod:`xalign.parallel`); the command line turns a
``--scheduler`` value into that: ``threads``, ``processes`` and ``sync`` are Dask's local
schedulers; ``local:N`` starts a ``distributed.LocalCluster`` of N single-threaded worker
processes for the command's duration; ``tcp://host:port`` connects to a running cluster (its
workers must see the same files).

The memory each ``local:N`` worker may use is the Dask config value
``xalign.worker-memory-limit`` (default ``"auto"``: the machine's memory shared out among the
workers), e.g. ``DASK_XALIGN__WORKER_MEMORY_LIMIT=1GiB`` in the environment; a worker that goes
beyond 95% of it is restarted by its nanny.

``local:N`` workers run without Dask's statistical profiler unless the config value
``xalign.worker-profile`` is true: the profiler keeps a tree of call stacks for every second of
work (up to ``distributed.admin.low-level-log-length`` seconds), which grew a probing worker by
about 0.25 MiB per slab, where the work itself stays flat (``benchmarks/outofcore.py``). Turn
it on to see the dashboard's profile page.

With a cluster, the command prints where its dashboard is (Dask's live view of tasks, workers
and memory), or, when the scheduler serves none because bokeh is missing, how to get it:
``pip install 'xalign[dashboard]'`` (on the scheduler's machine, for ``tcp://``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import click

from xalign.parallel import LOCAL_SCHEDULERS, SchedulerError

__all__ = ["check_spec", "compute_on"]


def check_spec(spec: str) -> str:
    """Validate a ``--scheduler`` value; returns it unchanged."""
    if spec in LOCAL_SCHEDULERS or spec.startswith(("tcp://", "tls://")):
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


@contextlib.contextmanager
def compute_on(spec: str | None) -> Iterator[dict[str, Any]]:
    """The keyword arguments that make a library call compute where ``spec`` says.

    ``{"scheduler": name}`` for a local scheduler (``{}`` for None: the library's default);
    ``{"client": client}`` for ``local:N`` (a cluster started here and closed at the end) or
    ``tcp://...`` (a connection, closed at the end; the cluster stays).
    """
    if spec is None:
        yield {}
        return
    check_spec(spec)
    if spec in LOCAL_SCHEDULERS:
        yield {"scheduler": spec}
        return
    import dask.config
    from distributed import Client, LocalCluster

    cluster = None
    if spec.startswith("local:"):
        profile = _flag(dask.config.get("xalign.worker-profile", False))
        # The nannies hand the config of this moment to the worker processes they start.
        with dask.config.set({"distributed.worker.profile.enabled": profile}):
            cluster = LocalCluster(
                n_workers=int(spec[6:]),
                threads_per_worker=1,
                processes=True,
                memory_limit=dask.config.get("xalign.worker-memory-limit", "auto"),
            )
        client = Client(cluster)
    else:
        client = Client(spec)
    _announce_dashboard(client, spec)
    try:
        yield {"client": client}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def dashboard_link(client: Any) -> str | None:
    """The URL of the dashboard of ``client``'s scheduler; None when it serves none."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # a scheduler too old or unreachable: no link to give
        return None
    if "dashboard" not in services:
        return None
    return str(client.dashboard_link)


def _announce_dashboard(client: Any, spec: str) -> None:
    link = dashboard_link(client)
    if link is not None:
        message = f"dask dashboard: {link}"
    elif spec.startswith("local:"):
        message = "dask dashboard: none (it needs bokeh: pip install 'xalign[dashboard]')"
    else:
        message = f"dask dashboard: none at {spec} (install bokeh where its scheduler runs)"
    if logging.getLogger("xalign").getEffectiveLevel() < logging.ERROR:  # not under -q
        click.echo(message, err=True)
