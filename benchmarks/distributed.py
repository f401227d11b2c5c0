"""Distributed benchmark: the probing grid on ``local:2`` against ``local:1``, and with a worker killed.

Run from the repository root: ``python -m benchmarks.distributed`` (``--quick`` for a small
store), or as part of ``python -m benchmarks``. On one store (BLOOM-560m-shaped slabs:
10,000 words x 1,024 neurons, float16) it runs the Gaussian-probe grid into three results
groups of that store and prints:

1. wall time on a ``LocalCluster`` of one worker and of two (single-threaded workers, so
   ``local:1`` uses one core), interleaved round by round, best of the rounds; with and
   without the cluster's start-up (from the first slab reported to the last);
2. the same grid on two workers with one worker process killed by SIGKILL once a quarter of
   the slabs are reported: its wall time against the undisturbed run, how many tasks were
   run again, and whether its results equal the undisturbed ones (they must: each slab's
   task writes chunks it alone owns, its status last, and a task in flight on a dead worker
   is run again elsewhere).

Task counts come from a scheduler plugin (this module is the scheduler's preload): slab
tasks finished (``processing -> memory``) and slab tasks lost in flight (``processing ->
released``, which only a worker's death causes here).
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import zarr

from benchmarks.common import Row, growth_row, scratch, speedup_row
from benchmarks.outofcore import BigSpec, write_big_store
from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.cli.cluster import compute_on
from xalign.store.nodes import child_array
from xalign.store.outputs import results_path
from xalign.testing import local_cluster_workers

TRANSITIONS: Counter[tuple[str, str]] = Counter()
"""(start, finish) -> count, for the slab tasks of the grid, filled by :class:`_SlabCounter`."""


def dask_setup(scheduler: Any) -> None:
    """Scheduler preload hook: count the slab tasks' transitions in :data:`TRANSITIONS`."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class _SlabCounter(SchedulerPlugin):
        def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if str(key).startswith("_run_slab"):
                TRANSITIONS[(start, finish)] += 1

    scheduler.add_plugin(_SlabCounter(), name="xalign-benchmark-slab-counter")


def timed_grid(
    store: str, name: str, scheduler: str, params: ProbeParams, on_slab: Callable[[int], None] | None = None
) -> dict[str, float]:
    """Run the grid into ``results/<name>``; wall time, time from the first slab to the last, counts."""
    import dask.config
    import distributed  # noqa: F401  (its config defaults, before setting one of its keys)

    TRANSITIONS.clear()
    marks: list[float] = []
    start = time.perf_counter()

    def report(summary: dict[str, int]) -> None:
        marks.append(time.perf_counter() - start)
        if on_slab is not None:
            on_slab(len(marks))

    # The cluster starts inside the timing, as it did when the library started it.
    with dask.config.set({"distributed.scheduler.preload": [__name__]}), compute_on(scheduler) as where:
        run_probe_grid(store, params=params, name=name, overwrite=True, on_slab=report, **where)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "first_to_last": marks[-1] - marks[0],
        "slabs": len(marks),
        "finished": TRANSITIONS[("processing", "memory")],
        "lost_in_flight": TRANSITIONS[("processing", "released")],
    }


def results_equal(store: str, a: str, b: str) -> bool:
    """Whether ``results/a`` and ``results/b`` hold the same arrays (NaN equal to NaN)."""
    left = zarr.open_group(store, path=results_path(a), mode="r", use_consolidated=False)
    right = zarr.open_group(store, path=results_path(b), mode="r", use_consolidated=False)
    names = sorted(name for name, _ in left.arrays())
    if names != sorted(name for name, _ in right.arrays()):
        return False
    for name in names:
        x, y = np.asarray(child_array(left, name)[...]), np.asarray(child_array(right, name)[...])
        if x.shape != y.shape or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    return True


def measure(quick: bool) -> dict[str, Any]:
    """All the figures, on a fresh store under :func:`benchmarks.common.scratch`."""
    spec = (
        BigSpec(steps=1, layers=4, words=4000, neurons=256, chunk_words=2048)
        if quick
        else BigSpec(steps=1, layers=8, words=10_000, neurons=1024)
    )
    rounds = 1 if quick else 2
    params = ProbeParams(probe="gaussian", k=3)
    store = str(scratch() / f"distributed-{'quick' if quick else 'full'}.zarr")
    write_big_store(store, spec)
    slabs = spec.steps * spec.layers * len(spec.languages)
    runs: dict[str, list[dict[str, float]]] = {"local:1": [], "local:2": []}
    for _ in range(rounds):
        for scheduler in runs:
            runs[scheduler].append(timed_grid(store, scheduler.replace(":", ""), scheduler, params))
    killed: dict[str, Any] = {}

    def kill(reported: int) -> None:
        if killed or reported < max(1, slabs // 4):
            return
        victim = local_cluster_workers()[0]
        killed["pid"] = victim.pid
        os.kill(victim.pid, signal.SIGKILL)

    disturbed = timed_grid(store, "killed", "local:2", params, on_slab=kill)
    return {
        "spec": spec,
        "slabs": slabs,
        "rounds": rounds,
        "local:1": min(runs["local:1"], key=lambda r: r["wall"]),
        "local:2": min(runs["local:2"], key=lambda r: r["wall"]),
        "local:1 steady": min(r["first_to_last"] for r in runs["local:1"]),
        "local:2 steady": min(r["first_to_last"] for r in runs["local:2"]),
        "killed": disturbed,
        "killed pid": killed.get("pid"),
        "equal 2 vs 1": results_equal(store, "local2", "local1"),
        "equal killed vs 2": results_equal(store, "killed", "local2"),
        "load": os.getloadavg(),
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    spec: BigSpec = figures["spec"]
    shape = f"{figures['slabs']} slabs of {spec.words:,} words x {spec.neurons} neurons"
    load = "load avg {:.1f} {:.1f} {:.1f}".format(*figures["load"])
    one, two, killed = figures["local:1"], figures["local:2"], figures["killed"]
    equal = "identical" if figures["equal 2 vs 1"] else "DIFFERENT"
    killed_equal = "identical" if figures["equal killed vs 2"] else "DIFFERENT"
    return [
        speedup_row(
            "distributed",
            f"grid, {shape}: local:2 vs local:1, wall",
            two["wall"],
            one["wall"],
            "s",
            f"speed-up with 2 workers, cluster start included; results {equal}; best of "
            f"{figures['rounds']}, interleaved; 2 cores shared with other users ({load})",
        ),
        speedup_row(
            "distributed",
            f"grid, {shape}: local:2 vs local:1, first slab to last",
            figures["local:2 steady"],
            figures["local:1 steady"],
            "s",
            "speed-up without the cluster's start-up and the first slab",
        ),
        growth_row(
            "distributed",
            f"grid, {shape}: a worker SIGKILLed after {max(1, figures['slabs'] // 4)} slabs",
            killed["wall"],
            two["wall"],
            "s",
            f"wall with the kill over undisturbed local:2; results {killed_equal} to the undisturbed run; "
            f"slab tasks lost in flight and run again: {killed['lost_in_flight']}; slab tasks finished: "
            f"{killed['finished']} of {figures['slabs']} (a finished one is never run again)",
        ),
    ]


def run(quick: bool) -> list[Row]:
    """The benchmark's rows (see the module docstring)."""
    return rows(measure(quick))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small store (256 neurons, 8 slabs)")
    args = parser.parse_args()
    from benchmarks.common import format_table, machine

    figures = measure(args.quick)
    print("machine: " + ", ".join(f"{key} {value}" for key, value in machine().items()))
    print(f"store: {figures['spec']}")
    for label in ("local:1", "local:2", "killed"):
        print(f"{label:8s} {figures[label]}")
    print(f"killed worker pid {figures['killed pid']}")
    print()
    print(format_table(rows(figures)))


if __name__ == "__main__":
    main()
