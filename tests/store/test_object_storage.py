"""Stores in object storage, against a real S3 server on loopback (SeaweedFS): opened by URL by
xalign and by plain xarray, analysed in place, with clear errors where it cannot work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from click.testing import CliRunner

import xalign
from tests.s3server import UNREACHABLE, S3Server
from xalign.cli.main import cli
from xalign.store.location import describe_location, resolve_location


@pytest.fixture
def bucket_store(s3: S3Server, synthetic_dir: Path, s3_prefix: str) -> str:
    """The synthetic store copied into the bucket under a folder of its test's own; its URL."""
    url = f"{s3_prefix}/synthetic.zarr"
    s3.filesystem().put(str(synthetic_dir), url.removeprefix("s3://"), recursive=True)
    return url


def _cli(s3: S3Server, *args: str) -> Any:
    options = [f"--storage-option={k}={v}" for k, v in s3.storage_options.items()]
    return CliRunner().invoke(cli, [*options, *args])


def test_a_store_in_a_bucket_opens_by_url_in_xalign_and_in_plain_xarray(
    s3: S3Server, bucket_store: str, synthetic_dir: Path
) -> None:
    remote = xalign.open_store(bucket_store, storage_options=s3.storage_options)
    local = xalign.open_store(str(synthetic_dir))
    assert remote.languages == local.languages
    assert list(remote.steps) == list(local.steps)
    xr.testing.assert_equal(remote.dataset("fr").hidden.load(), local.dataset("fr").hidden.load())
    tree = xr.open_datatree(bucket_store, engine="zarr", storage_options=s3.storage_options, chunks={})
    assert sorted(tree.to_dict()) == sorted(xr.open_datatree(str(synthetic_dir), engine="zarr").to_dict())
    assert describe_location(resolve_location(bucket_store, s3.storage_options)) == bucket_store


def test_the_command_line_reads_and_analyses_a_store_in_a_bucket(
    s3: S3Server, bucket_store: str, synthetic_dir: Path
) -> None:
    remote = _cli(s3, "info", bucket_store, "--json")
    assert remote.exit_code == 0, remote.output
    local = CliRunner().invoke(cli, ["info", str(synthetic_dir), "--json"])
    assert json.loads(remote.output)["languages"] == json.loads(local.output)["languages"]
    assert _cli(s3, "validate", bucket_store).exit_code == 0
    # An analysis writes its results into the bucket; the same as on disk.
    args = ["--probe", "gaussian", "--k", "3", "--layer", "1", "--n-permutations", "20"]
    probed = _cli(s3, "probe", bucket_store, *args, "--scheduler", "processes")  # other processes open it
    assert probed.exit_code == 0, probed.output
    assert CliRunner().invoke(cli, ["probe", str(synthetic_dir), *args]).exit_code == 0
    in_bucket = xalign.open_store(bucket_store, storage_options=s3.storage_options).results("probe")
    on_disk = xalign.open_store(str(synthetic_dir)).results("probe")
    xr.testing.assert_equal(in_bucket["selected_neuron"].load(), on_disk["selected_neuron"].load())
    assert s3.filesystem().exists(bucket_store.removeprefix("s3://") + "/results/probe/zarr.json")


def test_an_unreachable_endpoint_is_one_line_naming_the_url(bucket_store: str) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *UNREACHABLE,
            "info",
            bucket_store,
        ],
    )
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: cannot reach {bucket_store}")


def test_storage_options_for_a_path_or_a_bad_option_are_clear_errors(synthetic_dir: Path) -> None:
    from xalign.store.location import StoreLocationError

    with pytest.raises(StoreLocationError, match="storage options apply to URLs"):
        xalign.open_store(str(synthetic_dir), storage_options={"anon": True})
    bad = CliRunner().invoke(cli, ["--storage-option", "endpoint_url", "info", str(synthetic_dir)])
    assert bad.exit_code == 2
    assert "expected KEY=VALUE, got 'endpoint_url'" in bad.output


def test_copy_takes_a_store_to_a_bucket_and_back_unchanged(
    s3: S3Server, s3_prefix: str, synthetic_dir: Path, tmp_path: Path
) -> None:
    from xalign.testing import assert_stores_equal

    url = f"{s3_prefix}/synthetic.zarr"
    up = _cli(s3, "copy", str(synthetic_dir), url, "--json")
    assert up.exit_code == 0, up.output
    report = json.loads(up.stdout)["report"]
    assert report["copied"] == report["objects"] > 10
    back = tmp_path / "back.zarr"
    down = _cli(s3, "copy", url, str(back))
    assert down.exit_code == 0, down.output
    assert_stores_equal(str(synthetic_dir), str(back))
    again = _cli(s3, "copy", str(synthetic_dir), url, "--json")
    assert json.loads(again.stdout)["report"]["copied"] == 0  # all there already: nothing written


def test_a_copy_cut_short_does_not_open_and_resumes(
    s3: S3Server, s3_prefix: str, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xalign.errors import StoreNotFoundError
    from xalign.store.copy import copy_store

    url = f"{s3_prefix}/synthetic.zarr"
    done: list[int] = []

    def stop_after_ten(nbytes: int) -> None:
        done.append(nbytes)
        if len(done) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_store(str(synthetic_dir), url, storage_options=s3.storage_options, on_object=stop_after_ten)
    with pytest.raises(StoreNotFoundError):  # no root document yet: not a store
        xalign.open_store(url, storage_options=s3.storage_options)
    # A damaged object in the destination is found by its digest and written again.
    first_chunk = next(k for k in s3.filesystem().find(url.removeprefix("s3://")) if "/c/" in k)
    s3.filesystem().pipe(first_chunk, b"damaged")
    report = copy_store(str(synthetic_dir), url, storage_options=s3.storage_options)
    assert report.copied == report.objects - 9  # the 9 intact ones were kept
    remote = xalign.open_store(url, storage_options=s3.storage_options)
    local = xalign.open_store(str(synthetic_dir))
    xr.testing.assert_equal(remote.dataset("en").hidden.load(), local.dataset("en").hidden.load())
