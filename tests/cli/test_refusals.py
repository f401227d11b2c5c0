"""Impossible parameters refused up front in one line; words without a vector counted, not lost."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from xalign import dims, open_store
from xalign.cli.main import cli
from xalign.store.outputs import open_output
from xalign.store.write import consolidate


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("Error: ")]
    return line


def test_probe_refuses_more_neurons_than_the_store_has(synthetic_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["probe", str(synthetic_dir), "--probe", "gaussian", "--k", "200"])
    assert result.exit_code == 1
    assert _one_error_line(result.output) == "Error: k (200) exceeds the number of neurons (32) in the store"
    assert open_output(str(synthetic_dir), "results/probe") is None  # nothing stored as -1/NaN


def test_overlap_refuses_k_beyond_the_selection_or_the_neurons(synthetic_dir: Path) -> None:
    store = str(synthetic_dir)
    probed = CliRunner().invoke(cli, ["probe", store, "--probe", "gaussian", "--k", "4", "--layer", "1"])
    assert probed.exit_code == 0, probed.output
    beyond = CliRunner().invoke(cli, ["overlap", store, "--k", "5"])
    assert beyond.exit_code == 1
    assert _one_error_line(beyond.output) == (
        "Error: k (5) exceeds the 4 neurons that the probing run selected; "
        "use k <= 4, or probe again with a larger --k"
    )
    huge = CliRunner().invoke(cli, ["overlap", store, "--k", "300"])
    assert _one_error_line(huge.output) == "Error: k (300) exceeds the number of neurons (32) in the store"
    fine = CliRunner().invoke(cli, ["overlap", store, "--k", "4"])
    assert fine.exit_code == 0, fine.output
    # Layers not probed show no overlap: a dash, never "nan%".
    assert "nan" not in fine.output
    assert "-: no overlap" in fine.output


def test_the_lazy_grid_refuses_k_beyond_the_neurons(synthetic_dir: Path) -> None:
    from xalign.analysis.probing import ProbeParams, probe_grid

    with pytest.raises(ValueError, match=r"k \(33\) exceeds the number of neurons \(32\)"):
        probe_grid(open_store(str(synthetic_dir)), params=ProbeParams(probe="gaussian", k=33))


def test_words_without_a_vector_are_reported_per_cell(synthetic_dir: Path) -> None:
    """Words no subword encodes (NaN vectors, subwords 0) are counted in n_dropped, not in n_train."""
    store = str(synthetic_dir)
    group = zarr.open_group(store, path="languages/en", mode="r+", use_consolidated=False)
    number = np.asarray(group["Number"][...], dtype=object)
    split = np.asarray(group[dims.SPLIT][...], dtype=object)
    lost = np.flatnonzero((number != dims.NO_VALUE) & (split == "train"))[:30]
    hidden = group[dims.HIDDEN]
    values = np.asarray(hidden[...])
    values[:, :, lost] = np.nan
    hidden[...] = values
    subwords = np.asarray(group[dims.SUBWORDS][...])
    subwords[lost] = 0
    group[dims.SUBWORDS][...] = subwords
    consolidate(store)
    result = CliRunner().invoke(cli, ["probe", store, "--probe", "gaussian", "--k", "3", "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert "left out: up to 30 per cell" in result.output
    probed = xr.open_zarr(store, group="results/probe").sel(layer=1, attribute="Number")
    en, fr = probed.sel(language="en"), probed.sel(language="fr")
    assert (en["n_dropped"].values == 30).all()
    assert (fr["n_dropped"].values == 0).all()
    carried = int((number != dims.NO_VALUE).sum())
    counted = en["n_train"] + en["n_dev"] + en["n_test"] + en["n_dropped"]
    assert (counted.values <= carried).all()


def test_an_interrupted_store_opens_without_a_raw_warning(synthetic_dir: Path) -> None:
    """An extraction killed before it consolidated the metadata: info says incomplete, quietly."""
    import json

    root = synthetic_dir / "zarr.json"
    metadata = json.loads(root.read_text())
    metadata.pop("consolidated_metadata", None)
    root.write_text(json.dumps(metadata))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_store(str(synthetic_dir))
    result = CliRunner().invoke(cli, ["info", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output


def test_health_shows_a_dash_where_a_checkpoint_is_not_judged(synthetic_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["health", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output
    assert "-: not judged" in result.output
