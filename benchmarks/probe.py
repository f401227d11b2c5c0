"""Probing: vectorised greedy selection against the per-candidate loop, per cell and per grid.

Part of the suite (``python -m benchmarks --only probe``; alone: ``python -m benchmarks.probe``).
Measured side by side in one run:

1. **One cell.** At d = 1024 neurons (BLOOM-560m's width), 5,000 training words, 3 values and
   k = 10 (``--quick``: d = 128, 2,000 words): the whole greedy selection of k neurons
   with every candidate of a step scored in one batched operation
   (:func:`~xalign.analysis.selection.select_neurons`) against the reference's loop, which
   re-evaluates the fitted probe once per candidate
   (:func:`~xalign.analysis.selection.select_neurons_naive`), for the Gaussian and the latent
   probe; both must pick the same neurons. Also one greedy step once 0, k/2 and k-1 neurons
   are chosen, and the time to fit each probe.
2. **Whole grid.** Every (step, layer, language, attribute) cell of a synthetic store:
   ``run_probe_grid`` (vectorised, threads, reading slabs from the store and writing
   ``results/probe``) against the reference's way
   (:func:`benchmarks.baselines.naive_probe_grid`: cell after cell, per-candidate loop). The
   row is the time of the whole grid; the note gives cells per second.
3. **Schedulers.** The same grid on 2 threads and (full run) on ``LocalCluster``s of 1 and 2
   workers against one thread (``sync``), in wall time.
4. **Per-slab overhead.** On tiny slabs (the default synthetic store: 27 slabs of 600 words x
   32 neurons), what a grid spends per slab beyond probing itself: with each task opening
   and validating the store, as tasks did before the per-worker cache
   (:func:`~xalign.store.cache.task_store`), against the cache; and the whole grid's time.

Other times are CPU seconds of this process, all its threads (see ``benchmarks/__init__.py``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baselines import naive_probe_grid
from benchmarks.common import Row, cpu_seconds, scratch, speedup_row
from xalign.analysis.gaussian import GaussianProbe
from xalign.analysis.metrics import entropy_bits, score
from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.analysis.selection import select_neurons, select_neurons_naive
from xalign.cli.cluster import compute_on
from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store

NAME = "probe"


def data(n_train: int, d: int, values: int = 3, seed: int = 0) -> dict[str, Any]:
    """Gaussian words with 8 informative neurons; train, dev and test (80/10/10)."""
    rng = np.random.default_rng(seed)
    n = int(n_train * 1.25)
    y = rng.integers(0, values, n)
    X = rng.standard_normal((n, d))
    for j, neuron in enumerate(rng.choice(d, 8, replace=False)):
        X[:, neuron] += (0.4 + 0.1 * j) * (y - (values - 1) / 2)
    a, b = n_train, n_train + (n - n_train) // 2
    return {"train": (X[:a], y[:a]), "dev": (X[a:b], y[a:b]), "test": (X[b:], y[b:]), "values": values}


def step_scoring(probe: Any, d: dict[str, Any], chosen: np.ndarray, vectorised: bool) -> tuple[float, int]:
    """Score every remaining candidate of one greedy step; returns (seconds, the winner)."""
    X, y = d["dev"]
    prior = entropy_bits(y, d["values"])
    remaining = np.setdiff1d(np.arange(X.shape[1]), chosen)
    start = cpu_seconds()
    if vectorised:
        scores = score("mi", probe.log_proba_candidates(X, chosen, remaining), y, prior)
    else:
        scores = np.array([score("mi", probe.log_proba(X, [*chosen, int(c)]), y, prior) for c in remaining])
    return cpu_seconds() - start, int(remaining[int(np.argmax(scores))])


def cell_rows(label: str, probe: Any, fit_seconds: float, d: dict[str, Any], k: int, setup: str) -> list[Row]:
    """Whole selection and single steps, vectorised vs per-candidate loop, on one fitted probe."""
    args = {"k": k, "criterion": "mi", "n_values": d["values"]}
    start = cpu_seconds()
    fast = select_neurons(probe, d["dev"], d["test"], **args)
    t_fast = cpu_seconds() - start
    start = cpu_seconds()
    slow = select_neurons_naive(probe, d["dev"], d["test"], **args)
    t_slow = cpu_seconds() - start
    if not np.array_equal(fast.neurons, slow.neurons):
        raise AssertionError(f"{label}: the vectorised and the naive selection disagree")
    rows = [
        speedup_row(
            NAME,
            f"one cell, {label} probe: selection of k neurons",
            t_fast,
            t_slow,
            "CPU s",
            f"speed-up; baseline: probe re-evaluated once per candidate (reference); same neurons; "
            f"{setup}; fit alone {fit_seconds:.2f} s",
        )
    ]
    for size in (0, k // 2, k - 1):
        chosen = fast.neurons[:size]
        s_fast, winner_fast = step_scoring(probe, d, chosen, vectorised=True)
        s_slow, winner_slow = step_scoring(probe, d, chosen, vectorised=False)
        if not winner_fast == winner_slow == fast.neurons[size]:
            raise AssertionError(f"{label}: the two scorings of step {size} disagree")
        rows.append(
            speedup_row(
                NAME,
                f"one greedy step, {label} probe, {size} neurons chosen",
                s_fast,
                s_slow,
                "CPU s",
                f"speed-up; all remaining candidates scored; {setup}",
            )
        )
    return rows


def one_cell(quick: bool) -> list[Row]:
    d_neurons, n_train, k = (128, 2000, 10) if quick else (1024, 5000, 10)
    d = data(n_train, d_neurons)
    setup = f"d = {d_neurons}, {n_train} train words, 3 values, k = {k}"
    start = cpu_seconds()
    gaussian = GaussianProbe().fit(*d["train"], n_classes=3)
    rows = cell_rows("Gaussian", gaussian, cpu_seconds() - start, d, k, setup)
    from xalign.analysis.latent import LatentProbe

    start = cpu_seconds()
    latent = LatentProbe(seed=0, max_epochs=5 if quick else 50).fit(*d["train"], n_classes=3)
    fit = cpu_seconds() - start
    rows += cell_rows("latent", latent, fit, d, k, f"{setup}, {latent.n_epochs_} epochs")
    return rows


def grid_spec(quick: bool) -> SyntheticSpec:
    return SyntheticSpec(
        languages=("en", "fr"),
        steps=(0, 1),
        layers=(0, 1),
        neurons=64 if quick else 128,
        words=2000,
        signals=(PlantedSignal(attribute="Number", neurons=(3, 7), languages=("en", "fr")),),
    )


def whole_grid(quick: bool, out: Path) -> list[Row]:
    spec = grid_spec(quick)
    params = ProbeParams(probe="gaussian", k=10)
    warm = str(out / "warm-up.zarr")
    write_synthetic_store(warm, spec)
    run_probe_grid(warm, params=params, scheduler="threads")  # lazy imports, thread pools
    location = str(out / "grid.zarr")
    write_synthetic_store(location, spec)
    start = cpu_seconds()
    report = run_probe_grid(location, params=params, scheduler="threads")
    t_ours = cpu_seconds() - start
    cells = report.total("done")
    start = cpu_seconds()
    naive_cells = naive_probe_grid(location, params)
    t_naive = cpu_seconds() - start
    if naive_cells != cells:
        raise AssertionError(f"the naive grid did {naive_cells} cells, run_probe_grid {cells}")
    setup = (
        f"{cells} cells ({report.slabs_run} slabs of {len(spec.languages)} languages x {len(spec.steps)} "
        f"steps x {len(spec.layers)} layers), d = {spec.neurons}, {spec.words} words, "
        f"Gaussian, k = {params.k}"
    )
    rows = [
        speedup_row(
            NAME,
            "whole grid: run_probe_grid vs the reference's cell-by-cell loop",
            t_ours,
            t_naive,
            "CPU s",
            f"speed-up; {cells / t_ours:.2f} vs {naive_cells / t_naive:.2f} cells per CPU s; baseline: "
            f"cell after cell, slab read per cell, per-candidate loop; ours: threads, results kept; {setup}",
        )
    ]
    import dask

    times: dict[str, float] = {}
    schedulers = [("sync", "sync", 1), ("2 threads", "threads", 2)]
    if not quick:
        schedulers += [("LocalCluster, 1 worker", "local:1", 1), ("LocalCluster, 2 workers", "local:2", 1)]
    for label, scheduler, threads in schedulers:
        location = str(out / f"{scheduler.replace(':', '')}.zarr")
        write_synthetic_store(location, spec)
        start = time.perf_counter()
        with dask.config.set(num_workers=threads), compute_on(scheduler) as where:
            run_probe_grid(location, params=params, **where)
        times[label] = time.perf_counter() - start
    for label in list(times)[1:]:
        rows.append(
            speedup_row(
                NAME,
                f"whole grid on {label} vs 1 thread",
                times[label],
                times["sync"],
                "wall s",
                f"speed-up; {cells / times[label]:.2f} vs {cells / times['sync']:.2f} cells/s; wall time "
                f"(noisy on a shared machine); cluster start included; {setup}",
            )
        )
    return rows


def slab_overhead(out: Path) -> list[Row]:
    """Per-slab cost of a grid beyond probing, each task opening the store vs the per-worker cache."""
    import zarr

    from xalign.analysis import engine as probe_runner
    from xalign.analysis.probing import grid_attributes, probe_slab
    from xalign.store.store import open_store

    location = str(out / "overhead.zarr")
    write_synthetic_store(location, SyntheticSpec())
    params = ProbeParams(probe="gaussian", k=5)
    store = open_store(location)
    attributes = list(grid_attributes(store, store.languages, params))
    slabs = [(int(s), int(la), g) for s in store.steps for la in store.layers for g in store.languages]

    def probing_only() -> float:
        start = cpu_seconds()
        for step, layer, language in slabs:
            probe_slab(store, step, layer, language, attributes, params)
        return cpu_seconds() - start

    def grid(cached: bool) -> tuple[float, float]:
        """(whole grid, inside its tasks) in CPU seconds."""
        kept = probe_runner.task_store, probe_runner.task_arrays, probe_runner._run_slab
        inside = [0.0]

        def timed_task(*args: Any) -> Any:
            start = cpu_seconds()
            try:
                return kept[2](*args)
            finally:
                inside[0] += cpu_seconds() - start

        probe_runner._run_slab = timed_task  # type: ignore[assignment]
        if not cached:  # what every task did before: open and validate the store, open the group
            probe_runner.task_store = lambda where, run: open_store(where)  # type: ignore[assignment]
            probe_runner.task_arrays = lambda where, path, run: zarr.open_group(  # type: ignore[assignment]
                where, path=path, mode="r+", use_consolidated=False
            )
        try:
            start = cpu_seconds()
            run_probe_grid(location, params=params, scheduler="sync", overwrite=True)
            return cpu_seconds() - start, inside[0]
        finally:
            probe_runner.task_store, probe_runner.task_arrays, probe_runner._run_slab = kept  # type: ignore[assignment]

    probing_only(), grid(True)  # warm: labels, imports, allocator
    rounds = [(probing_only(), *grid(False), *grid(True)) for _ in range(3)]
    pure, before, before_tasks, after, after_tasks = (min(r[i] for r in rounds) for i in range(5))
    n = len(slabs)
    per_before, per_after = (before_tasks - pure) / n * 1e3, (after_tasks - pure) / n * 1e3
    alone = f"probing alone {pure / n * 1e3:.1f} ms/slab"
    setup = f"{n} slabs of 600 words x 32 neurons, Gaussian probe k=5, sync; {alone}"
    driver = f"driver outside the tasks {(after - after_tasks) * 1e3:.0f} ms per grid"
    return [
        speedup_row(
            NAME,
            "per-task overhead beyond probing: per-worker store cache vs opening the store per task",
            per_after,
            per_before,
            "CPU ms",
            f"{setup}; best of 3",
        ),
        speedup_row(
            NAME,
            "whole tiny grid: per-worker store cache vs opening the store per task",
            after,
            before,
            "CPU s",
            f"{setup}; {driver}; best of 3",
        ),
    ]


def gate_cost(quick: bool) -> list[Row]:
    """The probe quality gate's cost per cell against the cell's greedy selection, at the scale the
    issue asks for: d = 1024 neurons, 10,000 words (8,000 train, 1,000 dev, 1,000 test), k = 10,
    1,000 permutations; both in CPU seconds of one process."""
    from xalign.analysis.gate import permutation_test

    rng = np.random.default_rng(0)
    d, n = (256, 4000) if quick else (1024, 10000)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, d))
    X[:, :5] += 2 * y[:, None] - 1
    train, dev, test = slice(0, int(0.8 * n)), slice(int(0.8 * n), int(0.9 * n)), slice(int(0.9 * n), n)
    probe = GaussianProbe().fit(X[train], y[train], n_classes=2)
    start = cpu_seconds()
    selection = select_neurons(probe, (X[dev], y[dev]), (X[test], y[test]), k=10, n_values=2)
    selecting = cpu_seconds() - start
    start = cpu_seconds()
    permutation_test(probe.log_proba(X[test], selection.neurons), y[test], 2, n_permutations=1000, rng=rng)
    gating = cpu_seconds() - start
    start = cpu_seconds()  # the noise ceiling: one resample = a fit and a selection again
    rows = rng.integers(0, train.stop, train.stop)
    again = GaussianProbe().fit(X[train][rows], y[train][rows], n_classes=2)
    select_neurons(again, (X[dev], y[dev]), (X[test], y[test]), k=10, n_values=2)
    ceiling = cpu_seconds() - start
    return [
        Row(
            NAME,
            f"noise ceiling per cell (1 resample), d = {d}, {n} words",
            ceiling,
            selecting,
            ceiling / selecting,
            "CPU s",
            "ours/baseline; baseline: the cell's greedy selection of k = 10",
        ),
        Row(
            NAME,
            f"probe quality gate per cell (1000 permutations), d = {d}, {n} words",
            gating,
            selecting,
            gating / selecting,
            "CPU s",
            "ours/baseline; baseline: the cell's greedy selection of k = 10 (what the gate adds to)",
        ),
    ]


def run(quick: bool) -> list[Row]:
    """The probing rows (see the module's docstring)."""
    out = Path(tempfile.mkdtemp(dir=scratch(), prefix="probe-"))
    return one_cell(quick) + whole_grid(quick, out) + slab_overhead(out) + gate_cost(quick)


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", NAME])
