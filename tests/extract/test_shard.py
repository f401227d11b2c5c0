"""``shard=True``: the chunks of every layer of one chunk of items at one step in one object (a
Zarr v3 shard). The values are those of a store without shards; there are as many times fewer
activation objects as layers kept; plain xarray and the analyses read it; a resume keeps the
setting, and a run that asks for the other one is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

import xalign
from tests.extract.conftest import small_config
from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.cli.main import cli
from xalign.extract import Checkpoint, ExtractionError, extract_store
from xalign.testing import assert_stores_equal


def _files(store: Path, array: str) -> int:
    return sum(1 for path in (store / array / "c").rglob("*") if path.is_file())


def test_a_sharded_store_holds_the_same_values_in_fewer_objects(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    files = [treebanks["en"], treebanks["fr"]]
    plain, sharded = tmp_path / "plain.zarr", tmp_path / "sharded.zarr"
    extract_store(str(plain), checkpoints, files, small_config(keep_subwords=True))
    extract_store(str(sharded), checkpoints, files, small_config(keep_subwords=True, shard=True))
    assert_stores_equal(plain, sharded, ignore_attrs=("provenance",))
    layers = zarr.open_array(str(sharded), path="layer", mode="r").shape[0]
    for name in ("hidden", "sentence_mean", "sentence_last", "subword_hidden"):
        array = zarr.open_array(str(sharded), path=f"languages/fr/{name}", mode="r")
        assert array.shards == (1, layers, array.chunks[2], array.shape[3])
        assert array.chunks == (1, 1, array.chunks[2], array.shape[3])
        assert _files(plain, f"languages/fr/{name}") == layers * _files(sharded, f"languages/fr/{name}")
    provenance = zarr.open_group(str(sharded), mode="r").attrs["provenance"]
    assert provenance["config"]["shard"] is True  # type: ignore[index,call-overload]
    # Plain xarray reads it, and so do the analyses.
    tree = xr.open_datatree(str(sharded), engine="zarr", chunks={})
    np.testing.assert_array_equal(
        tree["languages/fr"].dataset.hidden.isel(step=1, layer=1).values,
        xalign.open_store(str(plain)).dataset("fr").hidden.isel(step=1, layer=1).values,
    )
    params = ProbeParams(probe="gaussian", k=2, min_count=3)
    run_probe_grid(str(plain), params=params)
    run_probe_grid(str(sharded), params=params)
    xr.testing.assert_equal(
        xalign.open_store(str(plain)).results("probe").load(),
        xalign.open_store(str(sharded)).results("probe").load(),
    )


def test_a_resume_keeps_the_store_s_sharding(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    store = tmp_path / "s.zarr"
    extract_store(str(store), checkpoints[:1], [treebanks["fr"]], small_config(shard=True))
    with pytest.raises(ExtractionError, match="shard: store has True, this run asks for False"):
        extract_store(str(store), checkpoints, [treebanks["fr"]], small_config())
    extract_store(str(store), checkpoints, [treebanks["fr"]], small_config(shard=True))  # a new step
    hidden = zarr.open_array(str(store), path="languages/fr/hidden", mode="r")
    assert hidden.shape[0] == len(checkpoints)
    assert hidden.shards is not None


def test_the_command_line_shards_on_request(
    tmp_path: Path, toy_dir: Path, treebanks: dict[str, Path]
) -> None:
    store = tmp_path / "s.zarr"
    args = ["extract", str(store), "--checkpoints", str(toy_dir), "--treebank", str(treebanks["fr"])]
    result = CliRunner().invoke(cli, [*args, "--shard", "--chunk-words", "64"])
    assert result.exit_code == 0, result.output
    assert zarr.open_array(str(store), path="languages/fr/hidden", mode="r").shards is not None
