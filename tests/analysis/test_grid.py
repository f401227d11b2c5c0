"""The probing grid on a synthetic store: planted neurons found, lazy, resumable, same on a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import xalign
from xalign import dims, open_store
from xalign.analysis.probing import ProbeParams, probe_grid, probe_job, run_probe_grid
from xalign.cli.cluster import compute_on
from xalign.store.outputs import ResultsError
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


def test_the_lazy_grid_and_the_stored_results_have_the_same_values(store_dir: str) -> None:
    store = open_store(store_dir)
    lazy = xalign.probe(store, GAUSSIAN, layers=[1], languages=["fr", "en"]).compute()
    outcome = xalign.persist(xalign.probe(store, GAUSSIAN, layers=[1], languages=["fr", "en"]), store)
    assert outcome.path == "results/probe"
    assert outcome.report is not None
    assert outcome.report.slabs_run == 2 * 2
    stored = store.results("probe").sel(layer=[1], language=lazy.language.values).compute()
    assert sorted(lazy.data_vars) == sorted(stored.data_vars)
    for name in lazy.data_vars:
        np.testing.assert_array_equal(lazy[name].values, stored[name].values, err_msg=name)
    assert lazy.attrs["parameters"] == stored.attrs["parameters"]
    assert stored.attrs["stale"] is False


def test_the_lazy_grid_is_built_in_constant_time_and_the_template_matches_it(store_dir: str) -> None:
    store = open_store(store_dir)
    job = probe_job(store, GAUSSIAN)
    grid, template = xalign.probe(store, GAUSSIAN), job.template()
    assert dict(template.attrs.items()) == grid.attrs
    assert list(template.data_vars) == list(grid.data_vars)
    for name, variable in grid.data_vars.items():
        assert (template[name].dims, template[name].shape, template[name].dtype) == (
            variable.dims,
            variable.shape,
            variable.dtype,
        )
    # One chunk per variable in the template; in the grid, one chunk (task) per slab, in a
    # graph of a few layers that is not materialised until computed.
    assert all(variable.data.npartitions == 1 for variable in template.data_vars.values())
    assert all(variable.data.npartitions == 2 * 2 * 3 for variable in grid.data_vars.values())
    assert len(grid["selected_neuron"].data.__dask_graph__().layers) <= 4


def test_probe_objects_carry_every_hyperparameter_to_the_cells_and_the_results(store_dir: str) -> None:
    from sklearn.base import clone

    from xalign.analysis.gaussian import GaussianProbe

    probe = GaussianProbe(prior_strength=7.5)
    assert clone(probe).get_params() == {"covariance": "tied", "prior_strength": 7.5}
    params = ProbeParams(probe=probe, k=2)
    assert params.make_probe() is not probe
    assert params.make_probe().prior_strength == 7.5
    run_probe_grid(store_dir, params=params, steps=[0], layers=[0], languages=["en"])
    stored = open_store(store_dir).results("probe").attrs["parameters"]
    assert stored["probe"] == "gaussian"
    assert stored["probe_params"] == {"covariance": "tied", "prior_strength": 7.5}
    assert ProbeParams.from_dict(stored).to_dict() == stored
    weaker = ProbeParams(probe=GaussianProbe(prior_strength=0.5), k=2)
    with pytest.raises(ResultsError, match="prior_strength"):
        run_probe_grid(store_dir, params=weaker, steps=[0], layers=[0], languages=["en"])


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
    import xalign.analysis.probing as runner

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
        "from xalign.analysis.probing import ProbeParams, run_probe_grid\n"
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
    # Each cell records the fitted inclusion probabilities (rho) of its chosen neurons.
    rho = cell.selected_rho.sel(language="fr", attribute="Number").values
    assert ((rho > 0) & (rho < 1)).all()
    assert np.isfinite(cell.mean_rho.sel(language="fr")).all()
