"""Out-of-core benchmark: the probing grid on stores larger than the memory it may use.

Run from the repository root: ``python -m benchmarks.outofcore`` (``--quick`` for small
stores; about 25 minutes in full on two shared cores). For each store size it:

1. writes a store of BLOOM-560m-shaped slabs (1,024 neurons, float16; two languages of
   10,000 words, half a PUD treebank; 13 layers) with the real layout, chunk by chunk as
   extraction does: the template first (metadata, labels, done flags), then each (step,
   layer, word-chunk) chunk of noise with planted signal, so that neither writing nor
   reading ever holds the store in memory; the stores grow by steps (checkpoints), each
   slab (step, layer, language) keeps its size;
2. runs the Gaussian-probe grid on it in a fresh process with a ``LocalCluster`` of two
   workers, each with a Dask ``memory_limit`` and every process under an address-space limit
   (``RLIMIT_AS``, set before the driver starts, inherited by the workers); on the smallest
   store it first tries a tighter address-space limit, which must fail (the cap binds);
3. reports the store's bytes on disk, the wall time, and the peak RSS of the driver, of the
   largest worker, and of the whole process tree (sampled every 50 ms);
4. measures, apart, what the driver of ``run_probe_grid`` spends per slab, on tiny slabs at
   two slab counts.

A worker's memory is bounded by a slab (``words x neurons``) times a constant, not by the
store: one task reads one slab, probes it, writes its results and lets it go. The driver
holds one small task and one summary per slab (item 4 measures how much).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import xalign
from benchmarks.common import Row, disk_bytes, format_table, growth_row, machine, run_child, vmhwm_kib
from xalign import dims
from xalign.store.layout import (
    LanguageMeta,
    empty_language_data,
    language_dataset,
    language_group,
    n_chunks,
    root_dataset,
)
from xalign.store.nodes import child_array
from xalign.store.write import consolidate, write_language, write_root
from xalign.testing import SyntheticSpec, synthetic_word_labels

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
MIB = 2**20

ATTRIBUTES = {"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem", "Neut")}
"""Labels of the big stores; Number is planted on a few neurons, Gender is noise."""
PLANTED = (3, 17, 40, 61)


@dataclass(frozen=True, kw_only=True, slots=True)
class BigSpec:
    """The shape of a big store: BLOOM-560m-like by default."""

    steps: int = 1
    layers: int = 25
    languages: tuple[str, ...] = ("en", "fr")
    words: int = 20_000
    """Words per language (a PUD treebank has about 21,000)."""
    neurons: int = 1024
    chunk_words: int = 4096
    words_per_sentence: int = 20
    seed: int = 0

    @property
    def slab_bytes(self) -> int:
        """Bytes of one (step, layer, language) slab of float16 activations."""
        return self.words * self.neurons * 2

    @property
    def raw_bytes(self) -> int:
        """Bytes of the uncompressed word activations."""
        return self.steps * self.layers * len(self.languages) * self.slab_bytes


def write_big_store(location: str, spec: BigSpec) -> None:
    """Write a schema-valid store of ``spec``'s shape without ever holding more than a chunk.

    The groups are written as extraction writes them (:func:`xalign.store.write.write_language`
    with a lazy template: metadata, labels and all-False done flags), then filled chunk by
    chunk with zarr; each chunk's done flag is set once its data is written.
    """
    rng = np.random.default_rng(spec.seed)
    steps = [1000 * (i + 1) for i in range(spec.steps)]
    layers = list(range(spec.layers))
    write_root(
        location,
        root_dataset(
            steps=steps,
            revisions=[f"big_step{s}" for s in steps],
            fingerprints=[f"big-{spec.seed}-{s}" for s in steps],
            layers=layers,
            provenance={
                "model_id": "xalign/big-synthetic",
                "tokenizer": "none",
                "pooling": "synthetic",
                "dtype": "float16",
                "xalign_version": xalign.__version__,
                "config_hash": f"big-seed-{spec.seed}",
                "data_files": {},
            },
        ),
        overwrite=True,
    )
    for language in spec.languages:
        words = synthetic_word_labels(
            SyntheticSpec(
                languages=spec.languages,
                words=spec.words,
                words_per_sentence=spec.words_per_sentence,
                attributes=ATTRIBUTES,
            ),
            language,
            rng,
        )
        n_sentences = int(words[dims.SENTENCE_INDEX][-1]) + 1
        meta = LanguageMeta(
            language=language,
            treebanks=(f"{language}_synthetic",),
            attributes=tuple(ATTRIBUTES),
            label_scheme="ud",
            split_mode="lemma",
            chunk_words=spec.chunk_words,
            chunk_sentences=spec.chunk_words,
        )
        template = language_dataset(
            meta=meta,
            steps=steps,
            layers=layers,
            words=words,
            sentences={
                dims.SENTENCE_ID: [f"s{i}" for i in range(n_sentences)],
                dims.TEXT: [f"big sentence {i}" for i in range(n_sentences)],
                dims.SENTENCE_TOKENS: np.bincount(words[dims.SENTENCE_INDEX], minlength=n_sentences),
            },
            data=empty_language_data(
                meta,
                n_steps=len(steps),
                n_layers=len(layers),
                n_words=spec.words,
                n_sentences=n_sentences,
                neurons=spec.neurons,
                dtype="float16",
            ),
            heldout_loss=np.linspace(6.0, 4.0, len(steps)),
        )
        write_language(location, language, template)
        _fill(location, language, spec, words, n_sentences, rng)
    consolidate(location)


def _fill(
    location: str,
    language: str,
    spec: BigSpec,
    words: dict[str, Any],
    n_sentences: int,
    rng: np.random.Generator,
) -> None:
    group = zarr.open_group(location, path=language_group(language), mode="r+", use_consolidated=False)
    hidden, done = group[dims.HIDDEN], group[dims.DONE]
    assert isinstance(hidden, zarr.Array)
    assert isinstance(done, zarr.Array)
    number = np.asarray(words["Number"], dtype=object)
    shift = np.where(number == "Sing", -1.0, np.where(number == "Plur", 1.0, 0.0)).astype(np.float32)
    signs = np.where(np.arange(len(PLANTED)) % 2 == 0, 1.0, -1.0).astype(np.float32)
    for s in range(spec.steps):
        for index in range(n_chunks(spec.words, spec.chunk_words)):
            lo, hi = index * spec.chunk_words, min(spec.words, (index + 1) * spec.chunk_words)
            for layer in range(spec.layers):
                block = rng.standard_normal((hi - lo, spec.neurons), dtype=np.float32)
                # Planted signal grows with the layer, so the grid has something to find.
                block[:, PLANTED] += (0.1 * (layer + 1)) * shift[lo:hi, None] * signs
                hidden[s, layer, lo:hi, :] = block.astype(np.float16)
            done[s, index] = True
    # Sentence-level arrays: noise (no analysis here reads them), written one slab at a time.
    for name in (dims.SENTENCE_MEAN, dims.SENTENCE_LAST):
        array = group[name]
        assert isinstance(array, zarr.Array)
        for s in range(spec.steps):
            for layer in range(spec.layers):
                array[s, layer] = rng.standard_normal((n_sentences, spec.neurons), dtype=np.float32).astype(
                    np.float16
                )
    loss, sentence_done = group[dims.SENTENCE_LOSS], group[dims.SENTENCE_DONE]
    assert isinstance(loss, zarr.Array)
    assert isinstance(sentence_done, zarr.Array)
    loss[...] = rng.uniform(3.0, 6.0, loss.shape).astype(np.float32)
    sentence_done[...] = True


def _hwm(pid: int | str) -> int:
    """Peak resident bytes (VmHWM) of a live process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return vmhwm_kib(status.read()) * 1024
    except (OSError, RuntimeError):
        return 0


class PeakSampler:
    """Peaks of the process tree, sampled in a thread every ``interval`` seconds.

    ``worker``: the largest VmHWM (the kernel's own high-water mark, so no spike is missed)
    of any child; ``tree``: the largest sum of the current RSS of this process and all its
    children (sampled); ``address_space``: the largest virtual size of any of them, which is
    what ``RLIMIT_AS`` caps.
    """

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._me = psutil.Process()
        self.interval = interval
        self.worker = 0
        self.tree = 0
        self.address_space = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            info = self._me.memory_info()
            total, vms = info.rss, info.vms
            for child in self._me.children(recursive=True):
                try:
                    child_info = child.memory_info()
                except psutil.Error:
                    continue
                total += child_info.rss
                vms = max(vms, child_info.vms)
                self.worker = max(self.worker, _hwm(child.pid))
            self.tree = max(self.tree, total)
            self.address_space = max(self.address_space, vms)


def run_grid(store: str, *, scheduler: str, memory_limit: str, k: int) -> dict[str, Any]:
    """Run the Gaussian-probe grid on ``store`` in this process; its figures (bytes, seconds).

    Meant to run in a fresh process under an address-space limit (see :func:`measure`).
    """
    import dask.config

    from xalign.analysis.probing import ProbeParams, run_probe_grid
    from xalign.cli.cluster import compute_on

    start = time.perf_counter()
    with (
        dask.config.set({"xalign.worker-memory-limit": memory_limit}),
        PeakSampler() as sampler,
        compute_on(scheduler) as where,
    ):
        report = run_probe_grid(store, params=ProbeParams(probe="gaussian", k=k), overwrite=True, **where)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "slabs": report.slabs_run,
        "cells_done": report.total("done"),
        "cells_skipped": report.total("skipped"),
        "driver_peak": _hwm("self"),
        "worker_peak": sampler.worker,
        # ru_maxrss (KiB) of the largest child waited for: every worker, the cluster being closed.
        "worker_peak_rusage": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "tree_peak": sampler.tree,
        "address_space_peak": sampler.address_space,
    }


def measure(
    store: str, *, scheduler: str, memory_limit: str, address_space: int | None, k: int
) -> dict[str, Any]:
    """:func:`run_grid` in a fresh process whose address space (and its workers') is capped.

    Raises
    ------
    RuntimeError
        If the grid fails under the caps; its message ends with the child's stderr.
    """

    def cap() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    command = [
        sys.executable,
        "-m",
        "benchmarks.outofcore",
        "--child",
        store,
        "--scheduler",
        scheduler,
        "--memory-limit",
        memory_limit,
        "--k",
        str(k),
    ]
    # Two malloc arenas per process: glibc reserves 64 MiB of address space per arena, one per
    # thread by default, which an address-space cap would count though nothing uses it.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        command, cwd=ROOT, env=env, preexec_fn=cap, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the grid failed under the caps (exit {done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What a run measures: store shapes (growing by steps) and the caps."""

    sizes: tuple[BigSpec, ...]
    scheduler: str = "local:2"
    memory_limit: str = "1GiB"
    """Dask's memory limit per worker (``xalign.worker-memory-limit``)."""
    address_space: int = GIB
    """``RLIMIT_AS`` of every process: the driver and each worker."""
    too_small: int | None = None
    """A tighter ``RLIMIT_AS`` tried on the smallest store, expected to fail (the cap binds)."""
    k: int = 3


def plan(quick: bool) -> Plan:
    if quick:
        small = BigSpec(steps=1, layers=2, words=10_000)
        return Plan(sizes=(small, BigSpec(steps=2, layers=2, words=10_000)))
    return Plan(
        sizes=tuple(BigSpec(steps=n, layers=13, words=10_000) for n in (1, 4, 10)),
        too_small=768 * MIB,
    )


def measure_all(quick: bool, *, log: Any = None) -> dict[str, Any]:
    """Write each store of :func:`plan`, run the capped grid on it, delete it; all the figures."""
    chosen = plan(quick)
    out: dict[str, Any] = {"plan": chosen, "sizes": [], "too_small": None}
    with tempfile.TemporaryDirectory(prefix="xalign-outofcore-") as tmp:
        for i, spec in enumerate(chosen.sizes):
            store = str(Path(tmp) / f"store-{i}.zarr")
            start = time.perf_counter()
            write_big_store(store, spec)
            written = time.perf_counter() - start
            size = disk_bytes(Path(store))
            if i == 0 and chosen.too_small is not None:
                try:
                    measure(
                        store,
                        scheduler=chosen.scheduler,
                        memory_limit=chosen.memory_limit,
                        address_space=chosen.too_small,
                        k=chosen.k,
                    )
                    out["too_small"] = "completed"
                except RuntimeError as error:
                    last = [line for line in str(error).splitlines() if line.strip()][-1]
                    out["too_small"] = last.strip()
            figures = measure(
                store,
                scheduler=chosen.scheduler,
                memory_limit=chosen.memory_limit,
                address_space=chosen.address_space,
                k=chosen.k,
            )
            figures.update(store_bytes=size, write_s=written, found=planted_found(store))
            out["sizes"].append(figures)
            if log is not None:
                print(f"store {size / GIB:.2f} GiB: {figures}", file=log, flush=True)
            shutil.rmtree(store)
    out["driver"] = driver_growth(quick)
    out["load"] = os.getloadavg()
    return out


_DRIVER_CHILD = """
import sys, time
from xalign.analysis.probing import run_probe_grid
from xalign.analysis.probing import ProbeParams
start = time.perf_counter()
if sys.argv[2] == "grid":
    run_probe_grid(sys.argv[1], params=ProbeParams(probe="gaussian", k=3, min_count=5), scheduler="sync")
else:
    from xalign import open_store
    open_store(sys.argv[1])
print("SECONDS", time.perf_counter() - start)
"""


def driver_growth(quick: bool) -> dict[str, Any]:
    """Peak RSS and time of a whole ``run_probe_grid`` on tiny slabs at two slab counts.

    Tiny slabs (300 words x 4 neurons, run in the driver's own process by the ``sync``
    scheduler) isolate what the driver spends per slab whatever the slab's size: the store's
    coordinates, the plan, one task and one small summary per slab.
    """
    from xalign.testing import SyntheticSpec, write_synthetic_store

    counts = (2, 8) if quick else (4, 16)
    out: dict[str, Any] = {"slabs": [], "peak": [], "seconds": []}
    with tempfile.TemporaryDirectory(prefix="xalign-driver-") as tmp:
        for steps in counts:
            store = str(Path(tmp) / f"steps{steps}.zarr")
            spec = SyntheticSpec(
                languages=("en", "fr"),
                steps=tuple(range(steps)),
                layers=tuple(range(25)),
                neurons=4,
                words=300,
            )
            write_synthetic_store(store, spec)
            child = run_child(_DRIVER_CHILD, [store, "grid"])
            out["slabs"].append(steps * 25 * 2)
            out["peak"].append(child.peak_rss_mib)
            out["seconds"].append(float(child.stdout.split()[-1]))
        out["open_only_peak"] = run_child(_DRIVER_CHILD, [store, "open"]).peak_rss_mib
    return out


def planted_found(store: str) -> float:
    """Share of Number cells, at the last layer, whose first selected neuron is a planted one."""
    group = zarr.open_group(store, path="results/probe", mode="r", use_consolidated=False)
    attributes = [str(a) for a in np.asarray(child_array(group, dims.ATTRIBUTE)[...])]
    selected = np.asarray(child_array(group, "selected_neuron")[...])
    selected = selected[:, -1, :, attributes.index("Number"), 0]
    return float(np.isin(selected, PLANTED).mean())


def rows(figures: dict[str, Any]) -> list[Row]:
    chosen: Plan = figures["plan"]
    first = figures["sizes"][0]
    caps = (
        f"caps: {chosen.scheduler}, Dask memory_limit {chosen.memory_limit} per worker, "
        f"RLIMIT_AS {chosen.address_space / GIB:g} GiB per process"
    )
    out = []
    for size in figures["sizes"]:
        where = f"store {size['store_bytes'] / GIB:.2f} GiB, {size['slabs']} slabs"
        for label, key in (
            ("peak RSS, largest worker", "worker_peak"),
            ("peak RSS, whole tree", "tree_peak"),
        ):
            out.append(
                growth_row(
                    "outofcore",
                    f"{where}: {label}",
                    size[key] / MIB,
                    first[key] / MIB,
                    "MiB",
                    f"over the smallest store's (flat = 1.0); {caps}",
                )
            )
        out.append(
            growth_row(
                "outofcore",
                f"{where}: wall",
                size["wall_s"],
                first["wall_s"],
                "s",
                f"over the smallest store's; slabs ratio {size['slabs'] / first['slabs']:g}; "
                "2 cores shared with other users",
            )
        )
    driver = figures["driver"]
    (n1, n2), (p1, p2), (t1, t2) = driver["slabs"], driver["peak"], driver["seconds"]
    out += [
        growth_row(
            "outofcore",
            f"driver: run_probe_grid, {n2} vs {n1} tiny slabs: peak RSS",
            p2,
            p1,
            "MiB",
            f"over the smaller grid's; {(p2 - p1) * 1024 / (n2 - n1):.1f} KiB per slab "
            f"(open_store alone: {driver['open_only_peak']:.0f} MiB); sync scheduler, "
            "slabs of 300 words x 4 neurons",
        ),
        growth_row(
            "outofcore",
            f"driver: run_probe_grid, {n2} vs {n1} tiny slabs: time",
            t2,
            t1,
            "s",
            f"over the smaller grid's; {(t2 - t1) * 1000 / (n2 - n1):.0f} ms per slab, "
            "the tiny slabs' probing included",
        ),
    ]
    return out


def run(quick: bool) -> list[Row]:
    """The benchmark's rows (see the module docstring)."""
    return rows(measure_all(quick))


def report(figures: dict[str, Any]) -> str:
    """The figures as the text of ``benchmarks/results/outofcore-*.txt``."""
    chosen: Plan = figures["plan"]
    spec = chosen.sizes[0]
    lines = [
        "machine: " + ", ".join(f"{key} {value}" for key, value in machine().items()),
        "load average at the end (other users share this machine): {:.1f} {:.1f} {:.1f}".format(
            *figures["load"]
        ),
        f"stores: {len(spec.languages)} languages x {spec.words:,} words x {spec.layers} layers per step, "
        f"{spec.neurons} neurons, float16; slab (step, layer, language) = {spec.slab_bytes / MIB:.1f} MiB; "
        "the store grows by steps",
        f"grid: Gaussian probe, k = {chosen.k}, both attributes (Number, Gender), {chosen.scheduler}",
        f"caps: Dask memory_limit {chosen.memory_limit} per worker (xalign.worker-memory-limit); "
        f"RLIMIT_AS {chosen.address_space / MIB:.0f} MiB on every process (driver and workers: set "
        "before the driver starts, inherited); MALLOC_ARENA_MAX=2",
    ]
    if figures["too_small"] is not None:
        lines.append(
            f"control: RLIMIT_AS {chosen.too_small / MIB if chosen.too_small else 0:.0f} MiB on the smallest "
            f"store: {figures['too_small']}"
        )
    header = (
        "store GiB",
        "slabs",
        "write s",
        "grid s",
        "driver MiB",
        "worker MiB",
        "tree MiB",
        "max VSZ MiB",
        "Number found",
    )
    table = [header]
    for size in figures["sizes"]:
        table.append(
            (
                f"{size['store_bytes'] / GIB:.2f}",
                str(size["slabs"]),
                f"{size['write_s']:.0f}",
                f"{size['wall_s']:.0f}",
                f"{size['driver_peak'] / MIB:.0f}",
                f"{size['worker_peak'] / MIB:.0f}",
                f"{size['tree_peak'] / MIB:.0f}",
                f"{size['address_space_peak'] / MIB:.0f}",
                f"{size['found']:.0%}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["", *("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table)]
    lines += [
        "",
        "driver: VmHWM of the process that runs run_probe_grid; worker: the largest VmHWM of any worker;",
        "tree: the largest sampled sum of the RSS of the driver and all workers (every 50 ms); max VSZ:",
        "the largest virtual size of any one process (what RLIMIT_AS caps); Number found: share of",
        "the last layer's Number cells whose first selected neuron is a planted one.",
    ]
    driver = figures["driver"]
    lines += [
        "",
        "driver: a whole run_probe_grid on tiny slabs (300 words x 4 neurons, sync scheduler),",
        "in fresh processes:",
        *(
            f"  {n:6d} slabs: peak RSS {peak:6.0f} MiB, {seconds:5.1f} s"
            for n, peak, seconds in zip(driver["slabs"], driver["peak"], driver["seconds"], strict=True)
        ),
        f"  open_store alone ({driver['slabs'][-1]} slabs): peak RSS {driver['open_only_peak']:.0f} MiB",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small stores (4 and 8 slabs)")
    parser.add_argument("--child", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default="local:2", help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", default="1GiB", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        figures = run_grid(args.child, scheduler=args.scheduler, memory_limit=args.memory_limit, k=args.k)
        print(json.dumps(figures))
        return
    figures = measure_all(args.quick, log=sys.stderr)
    print(report(figures))
    print(format_table(rows(figures)))


if __name__ == "__main__":
    main()
