"""Two extractions on one store: the second is refused at once, naming the store and the pid
of the one that holds it, and touches nothing; the lock dies with its holder, SIGKILL included,
so that rerunning the command resumes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zarr

from tests.faults.conftest import Reference, cli_extract, paused_holder, small_config
from xalign.extract import Checkpoint, ExtractionError, extract_store
from xalign.extract.lock import StoreLockedError, lock_path, store_lock
from xalign.testing import assert_stores_equal


def _snapshot(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in store.rglob("*") if p.is_file()}


def test_a_second_extract_is_refused_while_the_first_runs_and_resumes_once_it_is_killed(
    tmp_path: Path, toy_dir: Path, treebanks: list[Path], checkpoints: list[Checkpoint], reference: Reference
) -> None:
    store = tmp_path / "s.zarr"
    files = [str(path) for path in treebanks]
    with paused_holder(str(store), toy_dir, files, tmp_path) as holder:
        before = _snapshot(store)
        second = cli_extract(str(store), toy_dir, files)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        holds = f"Error: {store} is in use: another extraction holds it (xalign extract pid {holder.pid} on "
        assert holds in second.stderr
        assert f"lock file {lock_path(store)}" in second.stderr
        assert _snapshot(store) == before  # refused before touching anything
    assert lock_path(store).exists()  # left by the killed holder, but no longer locked
    extract_store(str(store), checkpoints, treebanks, small_config())
    assert_stores_equal(reference.path, store)
    assert not lock_path(store).exists()


def test_the_lock_is_refused_to_a_second_holder_until_released(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: list[Path]
) -> None:
    store = tmp_path / "s.zarr"
    with store_lock(store) as held:
        assert held == tmp_path / "s.zarr.lock"
        assert f"xalign extract pid {os.getpid()}" in held.read_text()
        with pytest.raises(
            StoreLockedError, match=rf"is in use: another extraction holds it .*pid {os.getpid()}"
        ):
            extract_store(str(store), checkpoints, treebanks, small_config())
        assert not store.exists()
    assert not held.exists()
    with store_lock(store):  # free again
        pass


def test_memory_stores_take_no_lock_and_a_lock_that_cannot_be_made_is_clear(tmp_path: Path) -> None:
    with store_lock(zarr.storage.MemoryStore()) as held:
        assert held is None
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with (
        pytest.raises(ExtractionError, match=r"cannot create a store at .*lock file"),
        store_lock(blocker / "s.zarr"),
    ):
        pass
