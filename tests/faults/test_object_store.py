"""The fault suite against a store in a bucket (a SeaweedFS S3 server on loopback).

- an extraction into the bucket makes the store an extraction onto disk makes;
- SIGKILL in the middle, then the same command again: the undisturbed store;
- two writers: the second is refused with the holder (its lease), touching nothing; once the
  killed holder's lease expires, a rerun takes it over and resumes;
- an upload that fails is retried; one that always fails is named by its object's URL, and
  the chunk stays to do;
- a corrupted object is caught by its checksum and named;
- an unreachable endpoint: one line naming the URL, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tests.faults.conftest import CLI_OPTIONS, Reference, cli_extract, paused_holder, small_config
from tests.s3server import UNREACHABLE, S3Server
from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.cli.main import cli
from xalign.errors import CorruptChunkError
from xalign.extract import Checkpoint, ExtractionError, extract_store
from xalign.extract.lease import lease_url
from xalign.store.location import resolve_location
from xalign.testing import assert_stores_equal

LEASE_SECONDS = 2


@pytest.fixture
def in_bucket(s3: S3Server) -> Iterator[dict[str, str]]:
    """The server's storage options in the Dask config here, and in the environment of children
    (``DASK_XALIGN__STORAGE_OPTIONS``), with short leases."""
    settings = {"xalign.storage-options": s3.storage_options, "xalign.lease-seconds": LEASE_SECONDS}
    env = {
        **os.environ,
        "DASK_XALIGN__STORAGE_OPTIONS": json.dumps(s3.storage_options),
        "DASK_XALIGN__LEASE_SECONDS": str(LEASE_SECONDS),
    }
    with dask.config.set(settings):
        yield env


def _objects(s3: S3Server, url: str) -> dict[str, str]:
    """Key -> ETag of every object of the store and beside it, but its lease (which its holder
    renews)."""
    fs = s3.filesystem()
    found = fs.find(url.removeprefix("s3://").rsplit("/", 1)[0], detail=True)
    lease = lease_url(url).removeprefix("s3://")
    return {key: str(info.get("ETag")) for key, info in found.items() if key != lease}


def _hidden_chunks(s3: S3Server, url: str) -> int:
    """Objects of hidden-state chunks written so far."""
    keys = s3.filesystem().find(url.removeprefix("s3://") + "/languages")
    return sum("/hidden/c/" in key for key in keys)


def total_words(store: Path) -> int:
    root = zarr.open_group(str(store), mode="r")
    steps = root["step"].shape[0]
    return sum(steps * root[f"languages/{language}/hidden"].shape[2] for language in root["languages"])


def _wait_for_lease_to_expire(s3: S3Server, url: str) -> None:
    fs = s3.filesystem()
    key = lease_url(url).removeprefix("s3://")
    deadline = time.monotonic() + 30
    while fs.exists(key) and time.monotonic() < deadline:
        fs.invalidate_cache()
        expires = json.loads(fs.cat_file(key))["expires"]
        if time.time() > expires:
            return
        time.sleep(0.2)


def test_an_extraction_into_a_bucket_makes_the_store_one_on_disk_makes(
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
) -> None:
    url = f"{s3_prefix}/s.zarr"
    extract_store(url, checkpoints, treebanks, small_config())
    assert_stores_equal(reference.path, resolve_location(url))
    fs = s3.filesystem()
    assert not fs.exists(lease_url(url).removeprefix("s3://")), "the lease is released"
    assert not fs.exists(url.removeprefix("s3://") + ".prepare.json")
    meta = json.loads(fs.cat_file(url.removeprefix("s3://") + "/zarr.json"))
    assert "consolidated_metadata" in meta, "metadata consolidated once the store is complete"
    again = extract_store(url, checkpoints, treebanks, small_config())
    assert again.steps == ()
    assert sorted(again.skipped) == [c.step for c in checkpoints]


_KILLED = """
import sys, time
import xalign.extract.run as run
from xalign.extract import ExtractConfig, extract_store, from_directory

original = run.run_batch

def slowed(*args, **kwargs):
    # The toy is so fast that the run would end before the test sees half its chunks.
    time.sleep(0.2)
    return original(*args, **kwargs)

run.run_batch = slowed
_, checkpoints = from_directory(sys.argv[2])
shard = sys.argv[3] == "shard"
config = ExtractConfig(model_id="xalign/toy-bloom", chunk_words=64, batch_size=4, shard=shard)
extract_store(sys.argv[1], checkpoints, sys.argv[4:], config)
"""


@pytest.mark.parametrize("shard", [False, True], ids=["chunks", "shards"])
def test_sigkill_in_a_bucket_then_rerun_gives_the_undisturbed_store(
    shard: bool,
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    toy_dir: Path,
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
) -> None:
    url = f"{s3_prefix}/s.zarr"
    files = [str(path) for path in treebanks]
    total = sum(1 for path in reference.path.glob("languages/*/hidden/c/**/*") if path.is_file())
    if shard:  # one object holds the chunks of all layers
        total //= zarr.open_array(str(reference.path), path="layer", mode="r").shape[0]
    kill_after = total // 2
    mode = "shard" if shard else "chunks"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED), url, str(toy_dir), mode, *files],
        env=in_bucket,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if s3.filesystem().exists(url.removeprefix("s3://")) and _hidden_chunks(s3, url) >= kill_after:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert _hidden_chunks(s3, url) < total
    _wait_for_lease_to_expire(s3, url)
    config = dataclasses.replace(small_config(), shard=shard)
    report = extract_store(url, checkpoints, treebanks, config)
    assert 0 < report.words_to_do < total_words(reference.path)
    assert_stores_equal(
        reference.path, resolve_location(url), ignore_attrs=() if not shard else ("provenance",)
    )
    hidden = zarr.open_array(resolve_location(url), path="languages/en/hidden", mode="r")
    assert hidden.shards == ((1, hidden.shape[1], 64, hidden.shape[3]) if shard else None)


def test_a_second_writer_is_refused_with_the_holder_and_takes_over_once_its_lease_expires(
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    tmp_path: Path,
    toy_dir: Path,
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
) -> None:
    url = f"{s3_prefix}/s.zarr"
    files = [str(path) for path in treebanks]
    with paused_holder(url, toy_dir, files, tmp_path, env=in_bucket) as holder:
        time.sleep(LEASE_SECONDS * 1.5)  # the holder renews its lease: still held past one term
        before = _objects(s3, url)
        options = [f"--storage-option={k}={v}" for k, v in s3.storage_options.items()]
        second = cli_extract(url, toy_dir, files, *options)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        holds = f"Error: {url} is in use: another extraction holds it (xalign extract pid {holder.pid} on "
        assert holds in second.stderr
        assert f"lease object {lease_url(url)}" in second.stderr
        assert _objects(s3, url) == before, "refused before touching anything"
    _wait_for_lease_to_expire(s3, url)
    extract_store(url, checkpoints, treebanks, small_config())  # takes the expired lease over
    assert_stores_equal(reference.path, resolve_location(url))
    assert not s3.filesystem().exists(lease_url(url).removeprefix("s3://"))


class FlakyUploads:
    """Makes zarr's uploads to the bucket fail: each key matching ``fails(key, attempt)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fails: Any) -> None:
        from zarr.storage import FsspecStore

        self.attempts: dict[str, int] = {}
        original = FsspecStore.set

        async def set(store: Any, key: str, value: Any, *args: Any, **kwargs: Any) -> None:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            if fails(key, self.attempts[key]):
                raise ConnectionResetError(f"connection reset by peer (while sending {key})")
            await original(store, key, value, *args, **kwargs)

        monkeypatch.setattr(FsspecStore, "set", set)


def test_a_failed_upload_is_retried_and_one_that_always_fails_is_named(
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"{s3_prefix}/s.zarr"
    hidden = "languages/fr/hidden/c/1/0/2/0"  # step index 1, layer 0, words 128..191 of fr
    with dask.config.set({"xalign.retry-delay": 0}), monkeypatch.context() as patch:
        # The first upload of every chunk of fr fails once; the flaky key always.
        flaky = FlakyUploads(
            patch, lambda key, n: (key.startswith("languages/fr/hidden/c") and n == 1) or (key == hidden)
        )
        with pytest.raises(ExtractionError) as caught:
            extract_store(url, checkpoints, treebanks, small_config())
    message = str(caught.value)
    assert f"upload of {url}/{hidden} failed 5 time(s)" in message
    assert "connection reset by peer" in message
    assert flaky.attempts[hidden] == 5
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    retried = [text for text in warned if "attempt 2 of 5" in text]
    assert any(f"{url}/languages/fr/hidden/c/0/0/0/0" in text for text in retried)
    root = zarr.open_group(resolve_location(url), mode="r", use_consolidated=False)
    done = np.asarray(root["languages/fr/done"][1, :])
    assert not done[2], "the chunk whose upload failed stays to do"
    _wait_for_lease_to_expire(s3, url)  # released on the error, so nothing to wait for
    extract_store(url, checkpoints, treebanks, small_config())
    assert_stores_equal(reference.path, resolve_location(url))


def test_a_corrupted_object_is_caught_by_its_checksum_and_named(
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
) -> None:
    url = f"{s3_prefix}/s.zarr"
    extract_store(url, checkpoints, treebanks, small_config())
    key = "languages/en/hidden/c/1/1/0/0"
    fs = s3.filesystem()
    data = bytearray(fs.cat_file(f"{url}/{key}".removeprefix("s3://")))
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    fs.pipe_file(f"{url}/{key}".removeprefix("s3://"), bytes(data))
    options = [f"--storage-option={k}={v}" for k, v in s3.storage_options.items()]
    checked = CliRunner().invoke(cli, [*options, "validate", url, "--checksums"])
    assert checked.exit_code == 1, checked.output
    assert "languages/en/hidden: chunk (1, 1, 0, 0)" in checked.output
    assert key in checked.output
    with pytest.raises(CorruptChunkError) as caught:
        run_probe_grid(url, params=ProbeParams(probe="gaussian", k=2, min_count=2), steps=[10], layers=[1])
    assert [fault.key for fault in caught.value.faults] == [key]


def test_an_extraction_to_an_unreachable_endpoint_is_one_line_naming_the_url(
    toy_dir: Path, treebanks: list[Path], tmp_path: Path
) -> None:
    url = "s3://xalign-tests/unreachable/s.zarr"
    result = CliRunner().invoke(
        cli,
        [
            *UNREACHABLE,
            "extract",
            url,
            "--checkpoints",
            str(toy_dir),
            *[arg for path in treebanks for arg in ("--treebank", str(path))],
            *CLI_OPTIONS,
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: cannot reach {url} (taking its lease {lease_url(url)}): ")
    assert "Traceback" not in result.output


def test_an_extraction_on_a_local_cluster_writes_into_the_bucket_from_its_workers(
    s3: S3Server,
    s3_prefix: str,
    in_bucket: dict[str, str],
    checkpoints: list[Checkpoint],
    treebanks: list[Path],
    reference: Reference,
) -> None:
    from xalign.cli.cluster import compute_on

    url = f"{s3_prefix}/s.zarr"
    with compute_on("local:2") as where:
        report = extract_store(url, checkpoints, treebanks, small_config(), client=where["client"])
    assert sorted(r.step for r in report.steps) == [c.step for c in checkpoints]
    assert_stores_equal(reference.path, resolve_location(url), ulps=1)
    assert not s3.filesystem().exists(lease_url(url).removeprefix("s3://"))
