"""A full disk during extraction: a clear error, done flags only for chunks fully written, and a
store that the same command, rerun once there is space, completes to equal an undisturbed one.

Simulated at Zarr's file writes (every point of an extraction can be reached), and for real on
a small tmpfs when the tests run as root. (tests/extract has a simpler simulated case too.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tests.faults.conftest import CLI_OPTIONS, FullDisk, Reference, small_config
from xalign import dims
from xalign.cli.main import cli
from xalign.extract import Checkpoint, ExtractionError, extract_store
from xalign.store.layout import ACTIVATIONS
from xalign.testing import assert_stores_equal, assert_valid_store


def _nth(part: str, n: int) -> Callable[[Path, int], bool]:
    """The n-th write of a file whose path contains ``part``."""
    seen = [0]

    def when(path: Path, _count: int) -> bool:
        if part in path.as_posix():
            seen[0] += 1
        return seen[0] >= n

    return when


def _assert_done_means_written(store: Path, reference: Path) -> tuple[int, int]:
    """Every chunk flagged done holds exactly the reference's values; return (done, not done)."""
    done_count = undone = 0
    mine, theirs = (zarr.open_group(str(s), mode="r", use_consolidated=False) for s in (store, reference))
    for language in ("en", "fr"):
        group = f"languages/{language}"
        chunk = {dims.WORD: 64, dims.SENTENCE: 512}
        for name, (along, done_name) in ACTIVATIONS.items():
            if f"{group}/{name}" not in theirs:
                continue
            if f"{group}/{done_name}" not in mine:
                # The disk filled while the language's template was written (zarr writes its
                # arrays' metadata concurrently, in no fixed order): no flag, nothing claimed.
                continue
            flags = np.asarray(mine[f"{group}/{done_name}"][...])
            for step, index in zip(*np.nonzero(flags), strict=True):
                window = slice(index * chunk[along], (index + 1) * chunk[along])
                got = np.asarray(mine[f"{group}/{name}"][step, :, window])
                want = np.asarray(theirs[f"{group}/{name}"][step, :, window])
                np.testing.assert_array_equal(got, want, err_msg=f"{group}/{name} step {step} chunk {index}")
            done_count += int(flags.sum()) if name == dims.HIDDEN else 0
            undone += int((~flags).sum()) if name == dims.HIDDEN else 0
    return done_count, undone


def _word_chunks(reference: Path) -> int:
    """Chunks of words (done flags) of every language and step."""
    root = zarr.open_group(str(reference), mode="r", use_consolidated=False)
    return sum(int(np.prod(root[f"languages/{language}/done"].shape)) for language in ("en", "fr"))


def _extract_command(store: Path, toy_dir: Path, treebanks: list[Path]) -> list[str]:
    files = [arg for path in treebanks for arg in ("--treebank", str(path))]
    return ["extract", str(store), "--checkpoints", str(toy_dir), *files, *CLI_OPTIONS]


def test_disk_full_while_writing_chunks_is_one_clear_line_and_resumes(
    tmp_path: Path, toy_dir: Path, treebanks: list[Path], reference: Reference
) -> None:
    store = tmp_path / "s.zarr"
    command = _extract_command(store, toy_dir, treebanks)
    runner = CliRunner()
    with FullDisk(_nth("/hidden/c/", 6)) as disk:
        result = runner.invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "Traceback" not in result.output
    (message,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert f"disk full while writing {store}/languages/" in message
    assert "/hidden (items " in message
    assert "free some space and rerun the same command to resume" in message
    assert "/hidden/c/" in disk.failed[0].as_posix()
    done, undone = _assert_done_means_written(store, reference.path)
    # A chunk of words is one file per layer (2 here): the 5 files written make 2 chunks whole,
    # and half of a third, which must not count as done.
    assert (done, undone) == (2, _word_chunks(reference.path) - 2)

    result = runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert_stores_equal(reference.path, store)


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda _path, count: count == 3, id="creating the store"),
        pytest.param(_nth("languages/fr/", 10), id="writing a language template"),
        pytest.param(_nth("/done/c/", 4), id="writing a done flag"),
        pytest.param(None, id="consolidating the metadata"),
    ],
)
def test_disk_full_anywhere_leaves_a_store_that_resumes(
    tmp_path: Path,
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
    when: Callable[[Path, int], bool] | None,
) -> None:
    store = tmp_path / "s.zarr"
    last = reference.writes
    with FullDisk(when or (lambda _path, count: count == last)) as disk:
        with pytest.raises(ExtractionError, match=r"disk full while writing .*rerun the same command to"):
            extract_store(str(store), checkpoints, treebanks, small_config())
        assert disk.failed
    if (store / "languages" / "fr" / "done").exists():
        _assert_done_means_written(store, reference.path)
    extract_store(str(store), checkpoints, treebanks, small_config())
    assert_stores_equal(reference.path, store)
    assert not list(tmp_path.glob("s.zarr.*")), "a lock or note left beside the store"


def test_disk_full_while_growing_a_store_is_undone_and_resumes(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: list[Path], reference: Reference
) -> None:
    store = tmp_path / "s.zarr"
    extract_store(str(store), checkpoints[:1], treebanks[:1], small_config())  # step 0, en
    with FullDisk(_nth("languages/fr/", 15)), pytest.raises(ExtractionError, match="disk full"):
        extract_store(str(store), checkpoints, treebanks, small_config())  # + step 10, + fr
    assert (tmp_path / "s.zarr.prepare.json").exists()
    extract_store(str(store), checkpoints, treebanks, small_config())
    assert_valid_store(str(store))
    assert_stores_equal(reference.path, store, ignore_attrs=("provenance",))


def _page_rounded_size(path: Path) -> int:
    page = 4096
    return sum(-(-(f.stat().st_size) // page) * page + page for f in path.rglob("*") if f.is_file())


def test_a_real_full_filesystem(
    tmp_path: Path, toy_dir: Path, treebanks: list[Path], reference: Reference
) -> None:
    """A 16 MiB tmpfs, nearly filled first; needs root (mount), skipped otherwise."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (free - _page_rounded_size(reference.path) // 2))
        store = disk / "s.zarr"
        command = _extract_command(store, toy_dir, treebanks)
        runner = CliRunner()
        result = runner.invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Error: disk full while writing" in result.output
        assert f"({os.strerror(errno.ENOSPC)})" in result.output  # the file system's own error

        filler.unlink()
        result = runner.invoke(cli, command)
        assert result.exit_code == 0, result.output
        assert_stores_equal(reference.path, store)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
