"""Shared pieces of the benchmark suite: one result row, peak memory of a child, the machine.

Every benchmark module of the suite (``benchmarks/<name>.py``) exposes::

    def run(quick: bool) -> list[Row]: ...

and the runner (``python -m benchmarks``) prints all the rows in one table. A row compares
``ours`` (xalign) against ``baseline`` (a peer's pattern, or the same work done another way)
measured side by side in the same run; ``ratio`` is computed by the module and its direction
is stated by ``note`` (e.g. ``"baseline/ours: speed-up"``), so that a reader never guesses.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Ratio directions, to be quoted at the start of ``Row.note``.
SPEEDUP = "baseline/ours"  # > 1: xalign is faster (times) or smaller (bytes)
GROWTH = "ours/baseline"  # e.g. time at 4x over time at 1x; flat = 1.0


@dataclass(frozen=True)
class Row:
    """One measured comparison.

    Attributes
    ----------
    benchmark
        The module's name, e.g. ``"extraction"``.
    measure
        What was measured, e.g. ``"time, 24 layers, 40 sentences"``.
    ours
        xalign's figure, in ``unit``.
    baseline
        The figure of the pattern compared against, in ``unit`` (``nan`` if none).
    ratio
        ``baseline / ours`` or ``ours / baseline``: ``note`` says which.
    unit
        Unit of ``ours`` and ``baseline`` (``"s"``, ``"MiB"``, ``"bytes"``, ``"cells/s"``...).
    note
        The ratio's direction first (``"baseline/ours ..."`` or ``"ours/baseline ..."``), then
        what the baseline is and anything a reader needs to interpret the figure.
    """

    benchmark: str
    measure: str
    ours: float
    baseline: float
    ratio: float
    unit: str
    note: str


def speedup_row(benchmark: str, measure: str, ours: float, baseline: float, unit: str, note: str) -> Row:
    """A row whose ratio is ``baseline / ours`` (> 1 means xalign is faster or smaller)."""
    ratio = baseline / ours if ours else float("nan")
    return Row(benchmark, measure, ours, baseline, ratio, unit, f"{SPEEDUP}; {note}")


def growth_row(benchmark: str, measure: str, ours: float, baseline: float, unit: str, note: str) -> Row:
    """A row whose ratio is ``ours / baseline`` (e.g. the figure at 4x over the figure at 1x)."""
    ratio = ours / baseline if baseline else float("nan")
    return Row(benchmark, measure, ours, baseline, ratio, unit, f"{GROWTH}; {note}")


def cpu_seconds() -> float:
    """CPU time of this process, all its threads: what the suite's single-process figures use.

    Unlike wall time, it does not count the time other users' processes hold the cores, so
    ratios stay put on a busy shared machine (with one math-library thread per process: see
    ``benchmarks/__init__.py``).
    """
    return time.process_time()


def best_of(
    rounds: int, *functions: Callable[[], Any], clock: Callable[[], float] = cpu_seconds
) -> list[float]:
    """Seconds of each function by ``clock``, best of ``rounds``, interleaved round by round.

    Interleaving spreads the noise of a shared machine over all of them alike.
    """
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for i, function in enumerate(functions):
            start = clock()
            function()
            best[i] = min(best[i], clock() - start)
    return best


_HWM = re.compile(r"VmHWM:\s+(\d+) kB")

# Appended to a child's script: prints its own high-water mark of resident memory, in kB, last.
# VmHWM, not getrusage: on Linux a child's ru_maxrss starts from its parent's at fork.
PRINT_VMHWM = """
import re as _re
print("VMHWM_KB", int(_re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)))
"""


def vmhwm_kib(status_text: str) -> int:
    """The VmHWM (peak resident set) in KiB from the text of ``/proc/<pid>/status``."""
    found = _HWM.search(status_text)
    if found is None:
        raise RuntimeError("no VmHWM line in the process status")
    return int(found.group(1))


@dataclass(frozen=True)
class ChildResult:
    """What :func:`run_child` measured: the child's peak RSS, its wall time and its stdout."""

    peak_rss_mib: float
    seconds: float
    stdout: str


def run_child(
    script: str,
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> ChildResult:
    """Run ``script`` with ``python -c`` in a fresh process and measure its peak RSS and wall time.

    The script's own VmHWM is printed by :data:`PRINT_VMHWM`, appended here, so the figure is the
    child's alone (its threads included; processes the child starts itself, e.g. Dask workers,
    are not counted — measure those in the workers). The working directory is the repository
    root, so ``import benchmarks`` and ``import xalign`` resolve to this checkout.

    Parameters
    ----------
    script
        Python source; ``sys.argv[1:]`` are ``args``.
    args
        Command-line arguments for the script.
    env
        Extra environment variables (added to this process's environment).
    timeout
        Seconds before the child is killed (``subprocess.TimeoutExpired``).
    preexec_fn
        Run in the child before it starts (e.g. ``resource.setrlimit`` for an address-space cap).

    Returns
    -------
    ChildResult
        Peak RSS in MiB, wall seconds, and the child's stdout without the VmHWM line.
    """
    full_env = {**os.environ, **(env or {})}
    root = str(Path(__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, full_env.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script + PRINT_VMHWM, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        preexec_fn=preexec_fn,
        cwd=root,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = done.stdout.splitlines()
    kib = next(int(line.split()[1]) for line in reversed(lines) if line.startswith("VMHWM_KB "))
    stdout = "\n".join(line for line in lines if not line.startswith("VMHWM_KB "))
    return ChildResult(peak_rss_mib=kib / 1024, seconds=seconds, stdout=stdout)


def machine() -> dict[str, str]:
    """The machine and the versions the figures were measured with."""
    info = {
        "cpus": str(os.cpu_count()),
        "threads per process": os.environ.get("OMP_NUM_THREADS", "default"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["ram"] = f"{kib / 1024**2:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        info["ram"] = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            model = next((line for line in cpuinfo if line.startswith("model name")), "")
        if model:
            info["cpu"] = model.split(":", 1)[1].strip()
    except OSError:
        pass
    for package in ("numpy", "torch", "zarr", "dask", "xarray", "transformers", "h5py"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = "not installed"
    return info


def format_table(rows: Sequence[Row]) -> str:
    """Rows as a fixed-width text table (also valid Markdown: a ``|`` in a cell is escaped)."""
    header = ("benchmark", "measure", "ours", "baseline", "ratio", "unit", "note")
    figures = [
        (r.benchmark, r.measure, _num(r.ours), _num(r.baseline), _num(r.ratio), r.unit, r.note) for r in rows
    ]
    cells = [header] + [tuple(cell.replace("|", "\\|") for cell in row) for row in figures]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _num(value: float) -> str:
    if value != value:  # nan
        return "-"
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.3g}"


_SCRATCH: list[Any] = []


def scratch() -> Path:
    """A temporary directory for this process's benchmarks, removed when it exits."""
    if not _SCRATCH:
        import tempfile

        _SCRATCH.append(tempfile.TemporaryDirectory(prefix="xalign-bench-"))
    return Path(_SCRATCH[0].name)


TOY_STEPS = (0, 1, 2, 3)
"""Checkpoints of the benchmarks' toy BLOOM: four, a step of training apart (fast to train;
the figures measure work, not what the model learnt)."""


def toy_checkpoints() -> Path:
    """A directory of toy BLOOM checkpoints (:data:`TOY_STEPS`), trained once per process."""
    from xalign.toy import ToyConfig, train_toy_checkpoints

    toy = scratch() / "toy"
    if not (toy / "DONE").exists():
        train_toy_checkpoints(toy, ToyConfig(steps=TOY_STEPS))
        (toy / "DONE").write_text("")
    return toy


def cut(language: str, sentences: int, out: Path, repeat: int = 1) -> Path:
    """The first ``sentences`` sentences of a shipped PUD file, the whole cut repeated ``repeat`` times."""
    from xalign.data import pud_files

    (source,) = pud_files([language])
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:sentences]
    copies = [block.replace("# sent_id = ", f"# sent_id = r{r}-") for r in range(repeat) for block in blocks]
    path = out / f"{language}-{repeat}x{sentences}" / source.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(copies) + "\n\n", encoding="utf-8")
    return path


def disk_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (or of the file ``path``)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
