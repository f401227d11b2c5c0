"""Probing benchmark: vectorised vs per-candidate greedy selection, training time, grid throughput.

Run from the repository root: ``python benchmarks/probe.py`` (``--quick`` for a short run).
At d = 1024 neurons, ~10,000 training words and k = 50 it prints, measured in one run:

1. the scoring of one greedy step, all candidates in one batched operation against the
   reference's loop (the fitted probe re-evaluated once per candidate), side by side at
   selection sizes |C| = 0, k/2 and k-1, for the Gaussian and the latent-variable probe
   (both pick the same neuron); and the whole vectorised selection of k neurons;
2. the time to fit each probe;
3. throughput of the whole grid (cells per second) on a synthetic store, with 1 and 2
   threads, and 1 and 2 ``LocalCluster`` workers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xalign.analysis.gaussian import GaussianProbe
from xalign.analysis.metrics import entropy_bits, score
from xalign.analysis.probe_runner import run_probe_grid
from xalign.analysis.probing import ProbeParams
from xalign.analysis.selection import select_neurons
from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store


def data(n_train: int, d: int, values: int = 3, seed: int = 0) -> dict[str, Any]:
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
    start = time.perf_counter()
    if vectorised:
        scores = score("mi", probe.log_proba_candidates(X, chosen, remaining), y, prior)
    else:
        scores = np.array([score("mi", probe.log_proba(X, [*chosen, int(c)]), y, prior) for c in remaining])
    return time.perf_counter() - start, int(remaining[int(np.argmax(scores))])


def selection_figures(probe: Any, d: dict[str, Any], k: int) -> dict[str, float]:
    start = time.perf_counter()
    selection = select_neurons(probe, d["dev"], d["test"], k=k, criterion="mi", n_values=d["values"])
    figures = {f"vectorised selection, all {k} steps (s)": time.perf_counter() - start}
    for size in (0, k // 2, k - 1):
        chosen = selection.neurons[:size]
        fast, winner_fast = step_scoring(probe, d, chosen, vectorised=True)
        slow, winner_slow = step_scoring(probe, d, chosen, vectorised=False)
        assert winner_fast == winner_slow == selection.neurons[size], "the two scorings disagree"
        figures[f"step with |C| = {size}: naive loop (s)"] = slow
        figures[f"step with |C| = {size}: vectorised (s)"] = fast
        figures[f"step with |C| = {size}: speed-up"] = slow / fast
    return figures


def grid_throughput(quick: bool) -> dict[str, float]:
    spec = SyntheticSpec(
        languages=("en", "fr"),
        steps=(0, 1) if quick else (0, 1, 2),
        layers=(0, 1),
        neurons=128 if quick else 256,
        words=2000,
        signals=(PlantedSignal(attribute="Number", neurons=(3, 7), languages=("en", "fr")),),
    )
    params = ProbeParams(probe="gaussian", k=10)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, scheduler, threads in (
            ("threads, 1", "sync", 1),
            ("threads, 2", "threads", 2),
            ("LocalCluster, 1 worker", "local:1", 1),
            ("LocalCluster, 2 workers", "local:2", 1),
        ):
            location = str(Path(tmp) / f"{scheduler.replace(':', '')}.zarr")
            write_synthetic_store(location, spec)
            import dask

            start = time.perf_counter()
            with dask.config.set(num_workers=threads):
                report = run_probe_grid(location, params=params, scheduler=scheduler)
            elapsed = time.perf_counter() - start
            figures[f"{label} (cells/s)"] = (report.cells_done + report.cells_skipped) / elapsed
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="d = 256, 3,000 words")
    args = parser.parse_args()
    d_neurons, n_train, k = (256, 3000, 20) if args.quick else (1024, 10_000, 50)
    d = data(n_train, d_neurons)
    print(f"machine: {os.cpu_count()} cores; d = {d_neurons}, {n_train} train words, 3 values, k = {k}")

    start = time.perf_counter()
    gaussian = GaussianProbe().fit(*d["train"], n_classes=3)
    print(f"Gaussian probe fit: {time.perf_counter() - start:.2f} s")
    for name, value in selection_figures(gaussian, d, k).items():
        print(f"  Gaussian  {name:45s} {value:10.2f}")

    try:
        from xalign.analysis.latent import LatentProbe

        start = time.perf_counter()
        latent = LatentProbe(seed=0).fit(*d["train"], n_classes=3)
        print(f"latent probe fit: {time.perf_counter() - start:.2f} s ({latent.n_epochs_} epochs)")
        for name, value in selection_figures(latent, d, k).items():
            print(f"  latent    {name:45s} {value:10.2f}")
    except ImportError as exc:
        print(f"latent probe skipped: {exc}")

    for name, value in grid_throughput(args.quick).items():
        print(f"grid throughput, {name:32s} {value:8.2f}")


if __name__ == "__main__":
    main()
