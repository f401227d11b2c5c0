"""The probing grid on a synthetic store: planted neurons found, lazy, resumable, same on a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from xalign import dims, open_store
from xalign.analysis.probe_runner import run_probe_grid
from xalign.analysis.probing import ProbeParams, grid_template, probe_grid
from xalign.cli.cluster import compute_on
from xalign.store.results import ResultsError
from xalign.testing import (
    PlantedSignal,
    SyntheticSpec,
    assert_stores_equal,
    raise_if_dask_computes,
    write_synthetic_store,
)

SPEC = SyntheticSpec(
    languages=("en", "fr", "es"),
    steps=(0, 1000),
    layers=(0, 1),
    neurons=24,
    words=1500,
    attributes={"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem", "Neut"), "Rare": ("A", "B")},
    signals=(
        PlantedSignal(
            attribute="Number",
            neurons=(3, 7),
            languages=("en", "fr"),
            steps=(1000,),
            layers=(1,),
            strength=3.0,
        ),
        PlantedSignal(
            attribute="Gender", neurons=(12, 20), languages=("fr",), steps=(1000,), layers=(1,), strength=3.0
        ),
    ),
)
GAUSSIAN = ProbeParams(probe="gaussian", k=4)


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    location = str(tmp_path / "s.zarr")
    write_synthetic_store(location, SPEC)
    return location


def test_planted_neurons_are_found_and_noise_is_not(store_dir: str) -> None:
    report = run_probe_grid(store_dir, params=GAUSSIAN)
    assert report.slabs_run == 2 * 2 * 3
    ds = xr.open_zarr(store_dir, group="results/probe").load()
    cell = ds.sel(step=1000, layer=1)
    for language in ("en", "fr"):
        assert set(cell.selected_neuron.sel(language=language, attribute="Number").values[:2]) == {3, 7}
        assert float(cell.test_mi.sel(language=language, attribute="Number", rank=1)) > 0.5
    assert set(cell.selected_neuron.sel(language="fr", attribute="Gender").values[:2]) == {12, 20}
    assert abs(float(cell.test_mi.sel(language="es", attribute="Number", rank=1))) < 0.1
    assert abs(float(ds.test_mi.sel(step=0, layer=1, language="en", attribute="Number", rank=1))) < 0.1
    assert (ds.status.sel(attribute="Number") == "done").all()
    assert int(ds.n_train.sel(step=0, layer=0, language="en", attribute="Number")) > 500
    assert np.isfinite(ds.all_test_mi.sel(attribute="Number")).all()


def test_cells_failing_the_filters_are_skipped_with_the_reason(tmp_path: Path) -> None:
    location = str(tmp_path / "s.zarr")
    write_synthetic_store(location, SyntheticSpec(words=300, steps=(0,), layers=(0,), languages=("en",)))
    strict = ProbeParams(probe="gaussian", k=2, min_count=40)
    with pytest.raises(ResultsError, match="no attribute passes the filters"):
        run_probe_grid(location, params=strict)
    run_probe_grid(location, params=strict, attributes=["Number", "Gender"])
    ds = xr.open_zarr(location, group="results/probe")
    status = ds.status.values.ravel().tolist()
    assert any(s.startswith("skipped: fewer than 2 values with 40+ words") for s in status)
    skipped = ds.status.values != "done"
    assert skipped.any()
    assert (ds.selected_neuron.values[skipped] == -1).all()


def test_the_grid_is_lazy_until_computed(store_dir: str) -> None:
    store = open_store(store_dir)
    with raise_if_dask_computes():
        lazy = probe_grid(store, params=GAUSSIAN, steps=[1000], layers=[1])
    assert lazy.selected_neuron.dims == (dims.STEP, dims.LAYER, dims.LANGUAGE, dims.ATTRIBUTE, dims.RANK)
    values = lazy.compute()
    assert set(values.selected_neuron.sel(language="en", attribute="Number").values[0, 0, :2]) == {3, 7}


def test_the_template_has_the_grids_layout_and_a_graph_that_does_not_grow(store_dir: str) -> None:
    store = open_store(store_dir)
    grid = probe_grid(store, params=GAUSSIAN)
    template = grid_template(store, params=GAUSSIAN)
    assert template.attrs == grid.attrs
    assert list(template.data_vars) == list(grid.data_vars)
    for name, variable in grid.data_vars.items():
        assert (template[name].dims, template[name].shape, template[name].dtype) == (
            variable.dims,
            variable.shape,
            variable.dtype,
        )
    for coord in grid.coords:
        assert template[coord].equals(grid[coord])
    # One chunk per variable whatever the number of slabs; the grid has one task per slab.
    assert all(variable.data.npartitions == 1 for variable in template.data_vars.values())
    assert len(template.__dask_graph__()) <= len(template.data_vars)
    assert len(grid.__dask_graph__()) > 2 * 2 * 3 * len(grid.data_vars)


def test_rerun_skips_and_other_parameters_are_refused(store_dir: str) -> None:
    run_probe_grid(store_dir, params=GAUSSIAN, layers=[1])
    again = run_probe_grid(store_dir, params=GAUSSIAN, layers=[1])
    assert again.slabs_run == 0
    assert again.slabs_already_done == 6
    with pytest.raises(ResultsError, match=r"other parameters \(k: 4 -> 5\)"):
        run_probe_grid(store_dir, params=ProbeParams(probe="gaussian", k=5), layers=[1])
    with pytest.raises(ResultsError, match="covers other attributes"):
        run_probe_grid(store_dir, params=GAUSSIAN, attributes=["Number"])
    rest = run_probe_grid(store_dir, params=GAUSSIAN, layers=[0, 1])
    assert (rest.slabs_run, rest.slabs_already_done) == (6, 6)
    open_store(store_dir)  # results of a subset still align with the store's coordinates


def test_an_interrupted_grid_resumes_to_the_same_results(
    store_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xalign.analysis.probe_runner as runner

    reference = str(tmp_path / "reference.zarr")
    write_synthetic_store(reference, SPEC)
    run_probe_grid(reference, params=GAUSSIAN, scheduler="sync")
    original, calls = runner.probe_slab, {"n": 0}

    def dies_after_five(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "probe_slab", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        run_probe_grid(store_dir, params=GAUSSIAN, scheduler="sync")
    monkeypatch.setattr(runner, "probe_slab", original)
    resumed = run_probe_grid(store_dir, params=GAUSSIAN, scheduler="sync")
    assert resumed.slabs_already_done == 5
    assert resumed.slabs_run == 7
    assert_stores_equal(reference, store_dir)


def test_a_local_cluster_gives_the_threaded_results(store_dir: str, tmp_path: Path) -> None:
    threaded = str(tmp_path / "threaded.zarr")
    write_synthetic_store(threaded, SPEC)
    run_probe_grid(threaded, params=GAUSSIAN, steps=[1000], scheduler="threads")
    with compute_on("local:2") as where:
        run_probe_grid(store_dir, params=GAUSSIAN, steps=[1000], **where)
    assert_stores_equal(threaded, store_dir)


def test_the_gaussian_probe_needs_no_torch(store_dir: str) -> None:
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from xalign.analysis.probe_runner import run_probe_grid\n"
        "from xalign.analysis.probing import ProbeParams\n"
        f"run_probe_grid({store_dir!r}, params=ProbeParams(probe='gaussian', k=2), steps=[0], layers=[0])\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_probe_cli_and_info(store_dir: str) -> None:
    from xalign.cli.main import cli

    result = CliRunner().invoke(cli, ["probe", store_dir, "--probe", "gaussian", "--k", "3", "--layer", "1"])
    assert result.exit_code == 0, result.output
    assert "results/probe: 6 slab(s) probed (18 cells, 0 skipped" in result.output
    info = CliRunner().invoke(cli, ["info", store_dir])
    assert "probe: 18/36 cells (18 probed, 0 skipped" in info.output  # one layer of two
    bad = CliRunner().invoke(cli, ["probe", store_dir, "--probe", "gaussian", "--scheduler", "gpu"])
    assert bad.exit_code == 1
    assert "unknown scheduler 'gpu'" in bad.output


def test_the_latent_probe_finds_the_planted_neurons_too(store_dir: str) -> None:
    pytest.importorskip("torch")
    params = ProbeParams(probe="latent", k=3)
    run_probe_grid(store_dir, params=params, steps=[1000], layers=[1], languages=["fr", "es"])
    cell = xr.open_zarr(store_dir, group="results/probe").sel(step=1000, layer=1).load()
    assert set(cell.selected_neuron.sel(language="fr", attribute="Number").values[:2]) == {3, 7}
    assert set(cell.selected_neuron.sel(language="fr", attribute="Gender").values[:2]) == {12, 20}
    assert float(cell.test_mi.sel(language="fr", attribute="Number", rank=1)) > 0.5
    assert abs(float(cell.test_mi.sel(language="es", attribute="Number", rank=1))) < 0.1
