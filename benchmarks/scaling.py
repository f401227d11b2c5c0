"""Scaling: how time and peak memory grow as words, layers and steps grow (1x, 2x, 4x).

Part of the suite (``python -m benchmarks --only scaling``; alone: ``python -m benchmarks.scaling``).
Each configuration runs in a fresh process, which reports the CPU time of the work (all its
threads; imports excluded) and its peak resident memory (VmHWM). One dimension grows at a time, from a base:

- **probe grid** (``run_probe_grid``, Gaussian probe, k = 5, one thread) on a synthetic store of
  2 languages x 2 steps x 2 layers x 4,096 words x 128 neurons (``--quick``: 2,048 x 64);
- **extraction** (``extract_store``, toy BLOOM of 4 blocks x 128, chunks of 512 words) of 1
  checkpoint, 1 kept layer and 120 French PUD sentences (``--quick``: 40).

A first run of the base configuration, not reported, warms the page cache (checkpoint files,
libraries). A row gives the figure at 4x against the figure at 1x (ratio = growth; linear in the work
would be 4.0, flat 1.0), with the 2x figure in the note (``--quick``: 2x only). Time should
grow about linearly with each dimension (the work does); memory should stay flat in steps
and layers (one slab or one checkpoint at a time) and grow with words only as far as one
slab (probing) or the chunk buffers (extraction) do.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.common import Row, cut, growth_row, run_child, scratch, toy_checkpoints

NAME = "scaling"

FACTORS = (1, 2, 4)
QUICK_FACTORS = (1, 2)


@dataclass(frozen=True)
class Size:
    """Multipliers of the base along each dimension."""

    words: int = 1
    layers: int = 1
    steps: int = 1

    @property
    def label(self) -> str:
        return f"words x{self.words}, layers x{self.layers}, steps x{self.steps}"


def sizes(quick: bool) -> list[tuple[str, int, Size]]:
    """(dimension, factor, size) of every configuration; the base once, first."""
    out = [("base", 1, Size())]
    for dimension in ("words", "layers", "steps"):
        for factor in (QUICK_FACTORS if quick else FACTORS)[1:]:
            out.append((dimension, factor, replace(Size(), **{dimension: factor})))
    return out


def _grid_store(location: str, size: Size, quick: bool) -> None:
    from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store

    words = (2048 if quick else 4096) * size.words
    write_synthetic_store(
        location,
        SyntheticSpec(
            languages=("en", "fr"),
            steps=tuple(range(2 * size.steps)),
            layers=tuple(range(2 * size.layers)),
            neurons=64 if quick else 128,
            words=words,
            chunk_words=1024,
            signals=(PlantedSignal(attribute="Number", neurons=(3, 7), languages=("en", "fr")),),
        ),
    )


def child() -> None:
    """Entry point of a measured process: ``grid LOCATION`` or ``extract STORE TOY TREEBANK STEPS LAYERS``."""
    mode = sys.argv[1]
    if mode == "grid":
        from benchmarks.analysis import _warm_up
        from xalign.analysis.probing import ProbeParams, run_probe_grid

        _warm_up(sys.argv[2])  # imports, outside the timed part
        start = time.process_time()
        report = run_probe_grid(sys.argv[2], params=ProbeParams(probe="gaussian", k=5), scheduler="sync")
        print(json.dumps({"seconds": time.process_time() - start, "work": report.total("done")}))
    elif mode == "extract":
        import torch
        import transformers

        from xalign.extract import ExtractConfig, extract_store, from_directory

        _ = (torch.nn, transformers.BloomForCausalLM, transformers.AutoTokenizer)  # imported before timing
        store, toy, treebank, steps, layers = sys.argv[2:7]
        _, checkpoints = from_directory(toy)
        config = ExtractConfig(model_id="toy", layers=tuple(range(int(layers))), chunk_words=512)
        start = time.process_time()
        report = extract_store(store, checkpoints[: int(steps)], [treebank], config)
        words = sum(step.words for step in report.steps)
        print(json.dumps({"seconds": time.process_time() - start, "work": words}))
    else:
        raise SystemExit(f"unknown mode {mode}")


_SCRIPT = "from benchmarks.scaling import child; child()"


def _measure(args: list[str]) -> tuple[float, float]:
    result = run_child(_SCRIPT, args)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return float(figures["seconds"]), result.peak_rss_mib


def _rows(what: str, base_note: str, figures: dict[tuple[str, int], tuple[float, float]]) -> list[Row]:
    base_time, base_rss = figures[("base", 1)]
    rows = []
    for dimension in ("words", "layers", "steps"):
        factors = sorted(f for d, f in figures if d == dimension)
        top = factors[-1]
        t_top, m_top = figures[(dimension, top)]
        t_mid = "".join(f"; {f}x/1x = {figures[(dimension, f)][0] / base_time:.2f}" for f in factors[:-1])
        m_mid = "".join(f"; {f}x/1x = {figures[(dimension, f)][1] / base_rss:.2f}" for f in factors[:-1])
        rows.append(
            growth_row(
                NAME,
                f"{what}: time, {dimension} x{top}",
                t_top,
                base_time,
                "CPU s",
                f"growth {top}x/1x (linear = {top:.1f}){t_mid}; base: {base_note}",
            )
        )
        rows.append(
            growth_row(
                NAME,
                f"{what}: peak RSS, {dimension} x{top}",
                m_top,
                base_rss,
                "MiB",
                f"growth {top}x/1x (flat = 1.0){m_mid}; whole process; base: {base_note}",
            )
        )
    return rows


def grid_rows(quick: bool, out: Path) -> list[Row]:
    figures = {}
    for dimension, factor, size in [("warm-up", 1, Size()), *sizes(quick)]:
        location = str(out / f"grid-{dimension}-{factor}.zarr")
        _grid_store(location, size, quick)
        figures[(dimension, factor)] = _measure(["grid", location])
    words, neurons = (2048, 64) if quick else (4096, 128)
    note = f"2 languages x 2 steps x 2 layers x {words} words x {neurons} neurons, Gaussian k = 5, 1 thread"
    return _rows("probe grid", note, figures)


def extract_rows(quick: bool, out: Path) -> list[Row]:
    toy = toy_checkpoints()
    base = 40 if quick else 120
    figures = {}
    for dimension, factor, size in [("warm-up", 1, Size()), *sizes(quick)]:
        treebank = cut("fr", base * size.words, out) if base * size.words <= 500 else None
        if treebank is None:  # beyond the shipped 500 sentences: the cut repeated
            treebank = cut("fr", base, out, repeat=size.words)
        store = str(out / f"extract-{dimension}-{factor}.zarr")
        args = ["extract", store, str(toy), str(treebank), str(size.steps), str(size.layers)]
        figures[(dimension, factor)] = _measure(args)
    note = f"1 checkpoint, 1 layer kept, {base} sentences, toy BLOOM 4 x 128, chunks of 512 words"
    return _rows("extraction", note, figures)


def run(quick: bool) -> list[Row]:
    """The scaling rows (see the module's docstring)."""
    out = Path(tempfile.mkdtemp(dir=scratch(), prefix="scaling-"))
    return grid_rows(quick, out) + extract_rows(quick, out)


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", NAME])
