"""Progress of long commands: plain lines in a log file, at the interval asked, on every scheduler."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from xalign.cli.progress import LineProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_the_interval_with_rate_and_time_left() -> None:
    clock, lines = Clock(), []
    bar = LineProgress(
        desc="extracting", unit="word", total=1000, interval=30, write=lines.append, clock=clock
    )
    clock.now = 10
    bar.update(100)  # the first update is always shown: the log says work started
    clock.now = 20
    bar.update(100)  # within 30 s of the last line: not shown
    clock.now = 41
    bar.set_postfix_str("12 MiB written")
    bar.update(200)
    clock.now = 50
    bar.close()
    assert lines[0] == "extracting: 100/1,000 words (10%), 10.0 words/s, 00:10 elapsed, about 01:30 left"
    assert lines[1] == (
        "extracting: 400/1,000 words (40%), 9.8 words/s, 00:41 elapsed, about 01:01 left; 12 MiB written"
    )
    assert lines[2] == "extracting: done, 400 words in 00:50 (8.0 words/s); 12 MiB written"
    assert len(lines) == 3
    bar.close()
    assert len(lines) == 3  # closing twice writes once


def test_no_line_when_nothing_was_done_and_updates_from_threads_add_up() -> None:
    lines: list[str] = []
    LineProgress(desc="probing", unit="slab", write=lines.append).close()
    assert lines == []
    bar = LineProgress(desc="probing", unit="slab", interval=3600, write=lines.append)
    threads = [threading.Thread(target=lambda: [bar.update(1) for _ in range(500)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bar.close()
    assert bar.n == 2000
    assert lines[-1].startswith("probing: done, 2,000 slabs in")


def test_a_bad_interval_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from xalign.cli.progress import progress_bar
    from xalign.errors import XalignError

    monkeypatch.setenv("XALIGN_PROGRESS_INTERVAL", "soon")
    with pytest.raises(XalignError, match="XALIGN_PROGRESS_INTERVAL='soon'"):
        progress_bar(desc="x", unit="y")


def _xalign(log: Path, *args: str) -> str:
    """Run ``xalign ARGS`` with stdout and stderr going to the file ``log``; its text."""
    env = {**os.environ, "XALIGN_PROGRESS_INTERVAL": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-c", "from xalign.cli.main import main; main()", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text  # no bar redrawn in a file
    return text


def test_each_long_command_writes_progress_lines_to_a_log_file(tmp_path: Path) -> None:
    toy, store = tmp_path / "toy", str(tmp_path / "s.zarr")
    text = _xalign(
        tmp_path / "toy.log",
        *("toy-checkpoints", "--out", str(toy), "--step", "0,2,4", "--hidden-size", "32", "--blocks", "1"),
        *("--vocab-size", "300"),
    )
    assert re.search(r"^training: 1/4 steps \(25%\), .* elapsed", text, re.M), text
    assert re.search(r"^training: done, 4 steps in .*; loss \d", text, re.M), text

    # On a cluster (local:1 here, as tcp://), words come from the workers as they write them.
    text = _xalign(
        tmp_path / "extract.log",
        *("extract", store, "--checkpoints", str(toy), "--language", "en", "--language", "fr"),
        *("--chunk-words", "256", "--scheduler", "local:1"),
    )
    assert re.search(r"^dask dashboard: http://127\.0\.0\.1:\d+/status$", text, re.M), text
    lines = re.findall(r"^extracting: ([\d,]+)/([\d,]+) words", text, re.M)
    assert len(lines) > 3, text  # batch by batch, not once per checkpoint
    total = int(lines[0][1].replace(",", ""))
    assert re.search(rf"^extracting: done, {total:,} words in", text, re.M), text

    text = _xalign(
        tmp_path / "probe.log", "probe", store, "--k", "2", "--layer", "1", "--n-permutations", "20"
    )
    assert re.search(r"^probing: 1/6 slabs \(17%\)", text, re.M), text  # 3 steps x 2 languages
    assert re.search(r"^probing: done, 6 slabs in .*; \d+ cells probed", text, re.M), text

    text = _xalign(tmp_path / "transfer.log", "transfer", store, "--language", "en", "--language", "fr")
    assert re.search(r"^transfer: done, \d+ slabs in", text, re.M), text

    text = _xalign(
        tmp_path / "finetune.log",
        *("finetune", store, "--checkpoints", str(toy), "--epochs", "1", "--step", "4", "--threads", "1"),
    )
    assert re.search(r"^fine-tuning: done, 1 checkpoint in", text, re.M), text


def test_quiet_runs_show_no_progress(tmp_path: Path) -> None:
    text = _xalign(
        tmp_path / "toy.log",
        *("-q", "toy-checkpoints", "--out", str(tmp_path / "toy"), "--step", "0,1", "--hidden-size", "16"),
        *("--blocks", "1", "--vocab-size", "300"),
    )
    assert "training:" not in text
