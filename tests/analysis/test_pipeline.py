"""The analyses end to end on a synthetic store, through the CLI: probe, overlap, transfer,
correlate, similarity, health and the report, with a duplicate checkpoint planted."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner, Result

from xalign import dims, open_store
from xalign.cli.main import cli
from xalign.testing import PlantedSignal, SyntheticSpec, assert_valid_store, write_synthetic_store

SPEC = SyntheticSpec(
    languages=("en", "fr", "es"),
    steps=(0, 1000, 2000),
    layers=(0, 1),
    neurons=24,
    words=1500,
    attributes={"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem")},
    parallel=1.0,
    signals=(
        # en and fr share their Number neurons from step 1000 on; es has its own.
        PlantedSignal(
            attribute="Number", neurons=(3, 7), languages=("en", "fr"), steps=(1000, 2000), strength=3.0
        ),
        PlantedSignal(
            attribute="Number", neurons=(15, 19), languages=("es",), steps=(1000, 2000), strength=3.0
        ),
    ),
)


def _run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    location = tmp_path_factory.mktemp("pipeline") / "s.zarr"
    write_synthetic_store(str(location), SPEC)
    _run("probe", str(location), "--probe", "gaussian", "--k", "2", "--attribute", "Number")
    return location


def test_overlap_of_shared_neurons_is_far_above_chance(analysed: Path) -> None:
    out = _run("overlap", str(analysed)).output
    assert "chance k/d = 0.083" in out
    ds = xr.open_zarr(analysed, group="analyses/overlap/probe").load()
    assert ds["overlap"].dims == (dims.STEP, dims.LAYER, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER)
    number = ds["overlap"].sel(attribute="Number", step=2000)
    assert (number.sel(language="en", language_other="fr") == 1).all()
    assert (number.sel(language="en", language_other="es") == 0).all()
    assert (ds["p_holm"].sel(attribute="Number", step=2000, language="en", language_other="fr") < 0.05).all()
    assert ds.attrs["parameters"]["chance"] == pytest.approx(2 / 24)


def test_linear_transfer_follows_the_shared_neurons(analysed: Path) -> None:
    _run("transfer", str(analysed), "--attribute", "Number")
    ds = xr.open_zarr(analysed, group="analyses/transfer/linear").load()
    accuracy = ds["accuracy"].sel(attribute="Number", step=2000, language="en")
    assert (accuracy.sel(language_other="fr") > 0.9).all()
    assert (accuracy.sel(language_other="es") < 0.75).all()


def test_correlation_is_positive_and_counts_its_cells(analysed: Path) -> None:
    _run("overlap", str(analysed))
    _run("transfer", str(analysed), "--attribute", "Number")
    out = _run("correlate", str(analysed), "--transfer", "transfer/linear", "--n-boot", "200").output
    assert "pearson r [95% CI]" in out
    assert "transfer: probe transfer (linear; same representations as the overlap" in out
    ds = xr.open_zarr(analysed, group="analyses/correlation/probe-linear").load()
    # 2 steps x 2 target languages, per layer: at step 0 no probe beats its null (no signal yet),
    # so the gate leaves those cells out of the overlap.
    assert ds["n_cells"].values.tolist() == [4, 4]
    assert (ds["r"].sel(statistic="pearson") > 0.5).all()


def test_similarity_sits_above_its_baseline(analysed: Path) -> None:
    _run("similarity", str(analysed))
    ds = xr.open_zarr(analysed, group="analyses/similarity/parallel").load()
    assert (ds["mean_cosine"].sel(language="fr") > ds["mean_baseline"].sel(language="fr")).all()


def test_a_duplicate_checkpoint_is_flagged_marked_and_excludable(analysed: Path, tmp_path: Path) -> None:
    root = zarr.open_group(str(analysed), mode="r+", use_consolidated=False)
    fingerprints = root[dims.FINGERPRINT]
    original = fingerprints[...].copy()
    fingerprints[2] = original[1]  # step 2000 now "has the weights" of step 1000
    try:
        out = _run("health", str(analysed)).output
        assert "weights duplicate step 1000" in out
        assert "1 of 3 checkpoint(s) flagged" in out
        _run("overlap", str(analysed), "--name", "healthy", "--exclude-flagged")
        ds = xr.open_zarr(analysed, group="analyses/overlap/healthy").load()
        assert np.isnan(ds["overlap"].sel(step=2000)).all()
        assert ds.attrs["parameters"]["excluded_steps"] == [2000]
        _run("transfer", str(analysed), "--attribute", "Number")
        _run("overlap", str(analysed))
        _run("similarity", str(analysed))
        report = _run("report", str(analysed), "--out", str(tmp_path / "report"), "--exclude-flagged")
        assert "left out of the correlations" in report.output
        page = (tmp_path / "report" / "index.html").read_text()
        assert "weights duplicate step 1000" in page
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= 4
        for image in images:
            data = (tmp_path / "report" / image).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n", image
    finally:
        fingerprints[...] = original


def test_analysed_store_stays_valid_and_opens_whole(analysed: Path) -> None:
    _run("overlap", str(analysed))
    _run("similarity", str(analysed))
    assert_valid_store(str(analysed))
    tree = xr.open_datatree(analysed, engine="zarr", chunks={})
    assert tree["analyses/overlap/probe"].to_dataset().sizes[dims.STEP] == len(SPEC.steps)
    assert open_store(str(analysed)).steps.tolist() == list(SPEC.steps)
    info = _run("info", str(analysed)).output
    assert re.search(r"^  overlap: .*\bprobe\b", info, flags=re.M)
    assert re.search(r"^  similarity: .*\bparallel\b", info, flags=re.M)


def test_user_mistakes_are_one_line_errors(analysed: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["overlap", str(analysed), "--probe", "nope"])
    assert result.exit_code == 1
    assert "no probing results named 'nope'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["correlate", str(analysed), "--transfer", "missing"])
    assert result.exit_code == 1
    assert "no transfer analysis named 'missing'" in result.output
    _run("overlap", str(analysed))
    result = CliRunner().invoke(cli, ["correlate", str(analysed)])
    assert result.exit_code == 1
    assert "no independent transfer to correlate with: run xalign finetune" in result.output
    bad = tmp_path / "scores.csv"
    bad.write_text("step,language,task,score\n1000,en,xnli,0.7\n1234,en,xnli,0.5\n")
    result = CliRunner().invoke(cli, ["transfer", str(analysed), "--scores", str(bad)])
    assert result.exit_code == 1
    assert "scores.csv:3" in result.output
    assert "1234" in result.output


def test_imported_scores_correlate_with_overlap(analysed: Path, tmp_path: Path) -> None:
    _run("overlap", str(analysed))
    scores = tmp_path / "xnli.csv"
    rows = ["revision,language,task,score,model"]
    for step in SPEC.steps:
        rows.append(f"synthetic_step{step},fr,xnli,{0.5 + step / 10000},synthetic")
        rows.append(f"synthetic_step{step},es,xnli,{0.4 - step / 20000},synthetic")
        rows.append(f"synthetic_step{step},fr,xnli,0.1,other-model")
    scores.write_text("\n".join(rows) + "\n")
    out = _run("transfer", str(analysed), "--scores", str(scores), "--model", "synthetic").output
    assert "xnli" in out
    stored = xr.open_zarr(analysed, group="analyses/transfer_scores/xnli").load()
    assert float(stored["score"].sel(task="xnli", step=2000, language="fr")) == pytest.approx(0.7)
    assert np.isnan(float(stored["score"].sel(task="xnli", step=2000, language="en")))
    _run("correlate", str(analysed), "--transfer", "xnli:xnli", "--n-boot", "200")
    ds = xr.open_zarr(analysed, group="analyses/correlation/probe-xnli-xnli").load()
    assert ds["n_cells"].values.tolist() == [4, 4]  # step 0's cells fail the probe quality gate
    assert (ds["r"].sel(statistic="pearson") > 0.5).all()
    assert ds.attrs["parameters"]["transfer"] == "transfer_scores/xnli:xnli"


def test_what_the_cli_stored_equals_the_lazy_results_of_the_api(analysed: Path) -> None:
    """Every command is a thin call of the API: its stored result is the lazy one, computed."""
    import xalign

    _run("overlap", str(analysed))
    _run("transfer", str(analysed), "--attribute", "Number")
    _run("similarity", str(analysed))
    _run("correlate", str(analysed), "--transfer", "transfer/linear", "--n-boot", "200", "--name", "api")
    store = xalign.open_store(str(analysed))
    lazy = {
        ("overlap", "probe"): xalign.overlap(store),
        ("transfer", "linear"): xalign.transfer(store, attributes=["Number"]),
        ("similarity", "parallel"): xalign.similarity(store),
        ("correlation", "api"): xalign.correlate(store, transfer="transfer/linear", n_boot=200),
    }
    for (kind, name), result in lazy.items():
        stored = store.analysis(kind, name).compute()
        computed = result.compute()
        assert stored.attrs["parameters"] == computed.attrs["parameters"], kind
        assert sorted(stored.data_vars) == sorted(computed.data_vars), kind
        for variable in computed.data_vars:
            np.testing.assert_array_equal(
                stored[variable].values, computed[variable].values, err_msg=f"{kind}: {variable}"
            )
    assert "not an independent test" in store.analysis("correlation", "api").attrs["warning"]
    probed = store.results("probe").compute()
    again = xalign.probe(store, probe="gaussian", k=2, attributes=["Number"]).compute()
    for variable in again.data_vars:
        np.testing.assert_array_equal(probed[variable].values, again[variable].values, err_msg=variable)
