"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only NAME ...]``.

Every module in :data:`MODULES` that is present exposes ``run(quick: bool) -> list[Row]``; the
runner calls them one after another in this process, prints one table of all their rows
(ours, the baseline measured beside it in the same run, and their ratio, whose direction each
row's note states), with the machine and versions, and writes the same text to
``benchmarks/results/suite-<cpus>cpu[-quick][-<only>].txt``. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import Row, format_table, machine

MODULES = ("extract", "probe", "analysis", "scaling", "outofcore", "distributed", "finetune", "objectstore")
"""Benchmark modules, in the order they run (missing ones are skipped with a note)."""

RESULTS = Path(__file__).resolve().parent / "results"


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"benchmarks.{name}") is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the suite runs (~2 min)")
    parser.add_argument(
        "--only", nargs="+", choices=MODULES, metavar="NAME", help=f"run only these ({', '.join(MODULES)})"
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no results file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
    warnings.filterwarnings("ignore", message="Port .* is already in use")  # Dask's dashboard

    names = list(args.only or MODULES)
    rows: list[Row] = []
    notes: list[str] = []
    started = time.perf_counter()
    for name in names:
        if not _available(name):
            notes.append(f"{name}: not present (benchmarks/{name}.py), skipped")
            continue
        print(f"[{time.perf_counter() - started:6.0f} s] {name} ...", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            found = list(module.run(args.quick))
        except Exception:
            notes.append(f"{name}: FAILED\n{traceback.format_exc()}")
            print(notes[-1], file=sys.stderr, flush=True)
            continue
        rows += found
        notes.append(f"{name}: {len(found)} rows in {time.perf_counter() - begin:.0f} s")
    total = time.perf_counter() - started

    info = machine()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"xalign benchmark suite, {'quick' if args.quick else 'full'} run, {when}, {total:.0f} s",
        "machine: " + ", ".join(f"{key} {value}" for key, value in info.items()),
        f"load average at the end (other users share this machine): {_loadavg()}",
        "ratio: its direction starts each note; 'baseline/ours' > 1 means xalign is faster or smaller,",
        "'ours/baseline' is an overhead (xalign over the bare work) or a growth (figure at Nx over 1x).",
    ]
    text = "\n".join([*header, "", format_table(rows), "", *notes]) + "\n"
    print(text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        suffix = ("-quick" if args.quick else "") + ("-" + "-".join(args.only) if args.only else "")
        path = RESULTS / f"suite-{info['cpus']}cpu{suffix}.txt"
        path.write_text(text, encoding="utf-8")
        print(f"written to {path}")
    return 1 if any("FAILED" in note for note in notes) else 0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
