"""Analyses out of core (lazily from the Zarr store) against in memory (numpy on loaded arrays).

Part of the suite (``python -m benchmarks --only analysis``; alone: ``python -m benchmarks.analysis``).
On a synthetic store that fits in memory (2 languages x 2 steps x 4 layers x 16,384 words x
256 neurons, float16, 134 MB of activations; ``--quick``: 4,096 words x 64 neurons x 2 layers),
each analysis runs in a fresh process, once lazily from the store and once on the arrays loaded
whole into memory first, both single-threaded (Dask ``sync``), so the ratio is the cost of
reading chunk by chunk against the cost of having everything loaded:

1. **Probe grid** (Gaussian probe, k = 5): ``run_probe_grid`` (one slab read per task, results
   written to the store) against the same per-slab work on loaded numpy arrays
   (:func:`benchmarks.baselines.in_memory_probe_grid`). In-memory time counts the computation
   only; the load is in the note.
2. **Per-neuron F statistic** of each attribute at every (step, layer): a one-way ANOVA
   reduction over all words, written once with xarray (:func:`f_statistic`) and run on the
   store's Dask arrays and on the same Dataset loaded into memory.
3. **Overlap** of the probe's top-k neuron sets across languages
   (:func:`xalign.analysis.overlap.overlap`) from ``results/probe`` opened lazily, against the
   same on the loaded array (a small analysis: the figure is Dask's fixed cost).

Times are CPU seconds of the measured process, all its threads (Zarr's I/O and decompression
included); peak resident memory (VmHWM) of each process is reported beside its time.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from benchmarks.common import Row, disk_bytes, growth_row, run_child, scratch, speedup_row
from xalign import dims
from xalign.analysis.cells import kept_values
from xalign.analysis.probing import ProbeParams
from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store

NAME = "analysis"

PARAMS = ProbeParams(probe="gaussian", k=5)
ROUNDS = 1
"""Each side runs this many times, alternately; the best time and the lowest peak are kept
(CPU time varies little from run to run, so once is enough)."""


def spec(quick: bool) -> SyntheticSpec:
    return SyntheticSpec(
        languages=("en", "fr"),
        steps=(0, 1),
        layers=(0, 1) if quick else (0, 1, 2, 3),
        neurons=64 if quick else 256,
        words=4096 if quick else 16_384,
        chunk_words=2048,
        signals=(PlantedSignal(attribute="Number", neurons=(3, 7), languages=("en", "fr")),),
    )


def f_statistic(hidden: xr.DataArray, onehot: xr.DataArray) -> xr.DataArray:
    """One-way ANOVA F of every neuron: between-value over within-value variance.

    ``hidden`` (..., word, neuron); ``onehot`` (word, value), 1 where the word has the value.
    Lazy if ``hidden`` is; one pass over the words (sums and sums of squares per value).
    """
    h = hidden.astype(np.float32)
    n = onehot.sum(dims.WORD)
    s1 = xr.dot(h, onehot, dim=dims.WORD)
    s2 = xr.dot(h * h, onehot, dim=dims.WORD)
    total_n = n.sum("value")
    mean = s1.sum("value") / total_n
    means = s1 / n
    between = (n * (means - mean) ** 2).sum("value")
    within = (s2 - n * means**2).sum("value")
    values = onehot.sizes["value"]
    f: xr.DataArray = (between / (values - 1)) / (within / (total_n - values))
    return f


def _onehots(location: str) -> dict[str, dict[str, xr.DataArray]]:
    """language -> attribute -> (word, value) indicator of its kept values."""
    from xalign.store.store import open_store

    store = open_store(location)
    out: dict[str, dict[str, xr.DataArray]] = {}
    for language in store.languages:
        labels = store.labels(language)
        kept = kept_values(labels, store.attributes(language))
        out[language] = {}
        for attribute, values in kept.items():
            column = np.asarray(labels[attribute].values, dtype=object)
            matrix = np.stack([column == v for v in values], axis=1).astype(np.float32)
            out[language][attribute] = xr.DataArray(matrix, dims=(dims.WORD, "value"))
    return out


def _f_all(location: str, in_memory: bool) -> tuple[float, float]:
    """(load seconds, compute seconds) of the F statistic of every language and attribute."""
    import dask

    from xalign.store.store import open_store

    store = open_store(location)
    onehots = _onehots(location)
    start = time.process_time()
    hidden = {language: store.dataset(language)[dims.HIDDEN] for language in store.languages}
    if in_memory:
        hidden = {language: h.load(scheduler="sync") for language, h in hidden.items()}
    loaded = time.process_time()
    with dask.config.set(scheduler="sync"):
        for language, h in hidden.items():
            for onehot in onehots[language].values():
                f_statistic(h, onehot).compute()
    return loaded - start, time.process_time() - loaded


def _warm_up(location: str) -> None:
    """Imports and a first opening of the store, outside the timed part of either side."""
    import dask.array
    import scipy.linalg
    import scipy.stats

    import xalign.analysis.engine
    import xalign.analysis.gaussian
    import xalign.analysis.selection
    import xalign.store.outputs
    from xalign.store.store import open_store

    del dask.array, scipy.linalg, scipy.stats, xalign.analysis.engine, xalign.analysis.gaussian
    del xalign.analysis.selection, xalign.store.outputs
    store = open_store(location)
    store.dataset(store.languages[0])[dims.HIDDEN][0, 0, :10].compute(scheduler="sync")


def child() -> None:
    """Entry point of a measured process: ``python -c '...child()' MODE LOCATION``."""
    mode, location = sys.argv[1], sys.argv[2]
    _warm_up(location)
    figures: dict[str, float] = {}
    if mode == "grid-lazy":
        from xalign.analysis.probing import run_probe_grid

        start = time.process_time()
        report = run_probe_grid(location, params=PARAMS, scheduler="sync", name="probe", overwrite=True)
        figures = {"load": 0.0, "compute": time.process_time() - start, "cells": report.total("done")}
    elif mode == "grid-memory":
        from benchmarks.baselines import in_memory_probe_grid, load_store_arrays

        start = time.process_time()
        loaded = load_store_arrays(location, PARAMS)
        middle = time.process_time()
        cells = in_memory_probe_grid(loaded, PARAMS)
        figures = {"load": middle - start, "compute": time.process_time() - middle, "cells": cells}
    elif mode in ("f-lazy", "f-memory"):
        load, compute = _f_all(location, in_memory=mode == "f-memory")
        figures = {"load": load, "compute": compute}
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(figures))


_SCRIPT = "from benchmarks.analysis import child; child()"


def _measure(mode: str, location: str) -> tuple[dict[str, float], float]:
    result = run_child(_SCRIPT, [mode, location])
    return json.loads(result.stdout.strip().splitlines()[-1]), result.peak_rss_mib


def overlap_rows(location: str, rounds: int = 3) -> list[Row]:
    """Overlap of the grid's results: lazy from the store vs on the loaded array."""
    import dask

    from xalign.analysis.overlap import overlap

    selected = xr.open_zarr(location, group="results/probe")["selected_neuron"]
    n_neurons = int(xr.open_zarr(location, group="languages/en")[dims.HIDDEN].sizes[dims.NEURON])
    loaded = selected.load()
    lazy_s, memory_s = [], []
    with dask.config.set(scheduler="sync"):
        for _ in range(rounds):
            start = time.process_time()
            lazy = overlap(selected, k=PARAMS.k, n_neurons=n_neurons).compute()
            lazy_s.append(time.process_time() - start)
            start = time.process_time()
            eager = overlap(loaded, k=PARAMS.k, n_neurons=n_neurons)
            memory_s.append(time.process_time() - start)
    xr.testing.assert_allclose(lazy, eager)
    return [
        growth_row(
            NAME,
            "overlap of top-k sets: lazy vs in memory",
            min(lazy_s),
            min(memory_s),
            "CPU s",
            f"overhead of laziness; results/probe read lazily vs loaded first; {selected.size:,} ranks, "
            f"k = {PARAMS.k}; best of {rounds}; same results",
        )
    ]


def run(quick: bool) -> list[Row]:
    """The out-of-core vs in-memory rows (see the module's docstring)."""
    out = Path(tempfile.mkdtemp(dir=scratch(), prefix="analysis-"))
    the_spec = spec(quick)
    location = str(out / "store.zarr")
    write_synthetic_store(location, the_spec)
    raw = (
        len(the_spec.languages)
        * len(the_spec.steps)
        * len(the_spec.layers)
        * the_spec.words
        * the_spec.neurons
        * 2
    )
    size = (
        f"{len(the_spec.languages)} lang x {len(the_spec.steps)} steps x {len(the_spec.layers)} layers x "
        f"{the_spec.words} words x {the_spec.neurons} neurons, {raw / 2**20:.0f} MiB float16 "
        f"({disk_bytes(Path(location)) / 2**20:.0f} MiB on disk)"
    )
    rows: list[Row] = []
    rounds = ROUNDS
    for label, lazy_mode, memory_mode in (
        (f"probe grid (Gaussian, k = {PARAMS.k})", "grid-lazy", "grid-memory"),
        ("per-neuron F statistic, every attribute", "f-lazy", "f-memory"),
    ):
        runs: dict[str, list[tuple[dict[str, float], float]]] = {lazy_mode: [], memory_mode: []}
        for _ in range(rounds):
            for mode in runs:
                runs[mode].append(_measure(mode, location))
        lazy = min((figures for figures, _ in runs[lazy_mode]), key=lambda f: f["compute"])
        memory = min((figures for figures, _ in runs[memory_mode]), key=lambda f: f["compute"])
        lazy_rss = min(rss for _, rss in runs[lazy_mode])
        memory_rss = min(rss for _, rss in runs[memory_mode])
        if "cells" in lazy and lazy["cells"] != memory["cells"]:
            raise AssertionError(f"{label}: {lazy['cells']} cells lazily, {memory['cells']} in memory")
        rows.append(
            growth_row(
                NAME,
                f"{label}: lazy from store vs numpy in memory, time",
                lazy["compute"],
                memory["compute"],
                "CPU s",
                f"overhead of out-of-core; both 1 thread (sync), best of {rounds}; in-memory time "
                f"excludes its load ({memory['load']:.1f} s; with it the ratio is "
                f"{lazy['compute'] / (memory['load'] + memory['compute']):.2f}); {size}",
            )
        )
        rows.append(
            speedup_row(
                NAME,
                f"{label}: lazy from store vs numpy in memory, peak RSS",
                lazy_rss,
                memory_rss,
                "MiB",
                f"times less memory; peak RSS of each fresh process (VmHWM), lowest of {rounds}; {size}",
            )
        )
    return rows + overlap_rows(location)


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", NAME])
