"""SIGKILL during the probing grid, then a rerun: the results equal an undisturbed run's.

(SIGKILL during extraction, then resume, is tested in tests/extract/test_extract.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.testing import PlantedSignal, SyntheticSpec, assert_stores_equal, write_synthetic_store

SPEC = SyntheticSpec(
    languages=("en", "fr"),
    steps=(0, 1000),
    layers=(1,),
    signals=(PlantedSignal(attribute="Number", neurons=(3, 7, 11), languages=("en", "fr"), layers=(1,)),),
)
PARAMS = ProbeParams(probe="gaussian", k=4, min_count=5)
CLI = "from xalign.cli.main import main; main()"


def _status_chunks(location: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(location / "results" / "probe" / "status" / "c"))


def _kill_when(child: subprocess.Popen[bytes], location: Path, chunks: int) -> None:
    """SIGKILL ``child`` as soon as ``chunks`` status chunks of its grid are written."""
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if _status_chunks(location) >= chunks:
            child.send_signal(signal.SIGKILL)
            return
        time.sleep(0.005)


def test_sigkill_during_the_probe_grid_then_rerun_gives_identical_results(tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference.zarr", tmp_path / "killed.zarr"
    for location in (reference, killed):
        write_synthetic_store(str(location), SPEC)
    command = ["probe", str(killed), "--probe", "gaussian", "--k", "4", "--min-count", "5"]
    child = subprocess.Popen(
        [sys.executable, "-c", CLI, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = threading.Thread(target=_kill_when, args=(child, killed, 2))
    watcher.start()
    # The undisturbed run, meanwhile.
    run_probe_grid(str(reference), params=PARAMS)
    total = _status_chunks(reference)
    assert total == len(SPEC.steps) * len(SPEC.layers) * len(SPEC.languages)
    watcher.join()
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the grid finished before it could be killed"
    finished = _status_chunks(killed)
    assert 2 <= finished < total

    report = run_probe_grid(str(killed), params=PARAMS)
    # The kill can land while the last status chunk file is being written: that file exists but
    # its slab is not done, and the rerun must redo it rather than read it as complete.
    assert finished - 1 <= report.slabs_already_done <= finished
    assert report.slabs_already_done >= 1
    assert report.slabs_run == total - report.slabs_already_done
    assert_stores_equal(reference, killed)
    assert (open_results(killed)["status"] == "done").all()


def open_results(location: Path) -> dict[str, np.ndarray]:
    import zarr

    group = zarr.open_group(str(location), path="results/probe", mode="r", use_consolidated=False)
    return {name: np.asarray(array[...]) for name, array in group.arrays()}
