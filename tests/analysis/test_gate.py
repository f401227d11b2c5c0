"""The probe quality gate: a permutation null calibrated under pure noise, powerful under signal,
and multiplicity corrections equal to scipy's and Holm's."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from xalign.analysis.gate import gate, permutation_test
from xalign.analysis.gaussian import GaussianProbe
from xalign.analysis.metrics import entropy_bits, normalised_mi
from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.testing import PlantedSignal, SyntheticSpec, write_synthetic_store


def _probe_on(X: np.ndarray, y: np.ndarray, n_train: int) -> np.ndarray:
    probe = GaussianProbe().fit(X[:n_train], y[:n_train], n_classes=2)
    return probe.log_proba(X[n_train:], np.arange(X.shape[1]))


def test_the_observed_statistic_is_the_test_mi() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    log_p = np.log(rng.dirichlet(np.ones(3), 300))
    observed, p, null_mean = permutation_test(log_p, y, 3, n_permutations=99, rng=rng)
    assert observed == pytest.approx(float(normalised_mi(log_p, y, entropy_bits(y, 3))))
    assert 0 < p <= 1
    assert null_mean < 0  # random predictions are worse than the prior


def test_under_pure_noise_p_values_are_uniform_and_five_percent_fall_below_005() -> None:
    rng = np.random.default_rng(1)
    p_values = []
    for _ in range(400):
        X, y = rng.standard_normal((260, 6)), rng.integers(0, 2, 260)
        _, p, _ = permutation_test(_probe_on(X, y, 160), y[160:], 2, n_permutations=199, rng=rng)
        p_values.append(p)
    p_values = np.asarray(p_values)
    rejected = float(np.mean(p_values <= 0.05))
    # 400 draws of Bernoulli(0.05): the 99.9% range is about 0.02 to 0.085.
    assert 0.02 <= rejected <= 0.085, rejected
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 0.001


def test_a_planted_signal_gets_the_smallest_p_value() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    X = rng.standard_normal((400, 6))
    X[:, 0] += 1.5 * (2 * y - 1)
    observed, p, null_mean = permutation_test(_probe_on(X, y, 200), y[200:], 2, n_permutations=199, rng=rng)
    assert p == pytest.approx(1 / 200)
    assert observed > 0.2 > null_mean


def _results(p: np.ndarray) -> xr.Dataset:
    shape = p.shape
    return xr.Dataset(
        {"gate_p": (("step", "layer", "language", "attribute"), p)},
        coords={"step": np.arange(shape[0]), "language": [f"l{i}" for i in range(shape[2])]},
    )


def test_corrections_equal_scipys_bh_and_holm_and_unprobed_cells_never_pass() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.02, (2, 2, 3, 4)) ** 2
    p[0, 0, 0, 0] = np.nan  # not probed
    p[1, 1, 2, 3] = 0.9
    finite = np.isfinite(p)
    bh = gate(_results(p), alpha=0.01, method="bh")
    expected = scipy.stats.false_discovery_control(p[finite], method="bh") <= 0.01
    np.testing.assert_array_equal(bh.values[finite], expected)
    assert not bh.values[0, 0, 0, 0]
    assert bh.attrs["family"] == finite.sum()
    holm = gate(_results(p), alpha=0.01, method="holm")
    order = np.sort(p[finite])
    m = len(order)
    brute = np.maximum.accumulate(np.minimum(1, order * (m - np.arange(m))))
    assert int(holm.sum()) == int(np.sum(brute <= 0.01))
    assert int(holm.sum()) <= int(bh.sum())
    with pytest.raises(ValueError, match="method must be"):
        gate(_results(p), method="bonferroni")  # type: ignore[arg-type]


def test_on_a_grid_noise_cells_fail_and_planted_cells_pass(tmp_path: object) -> None:
    location = str(tmp_path) + "/s.zarr"  # type: ignore[operator]
    spec = SyntheticSpec(
        languages=("en", "fr"),
        steps=(0, 1000),
        layers=(0, 1),
        neurons=16,
        words=1500,
        attributes={"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem")},
        signals=(
            PlantedSignal(
                attribute="Number", neurons=(3, 7), languages=("en", "fr"), steps=(1000,), strength=3.0
            ),
        ),
    )
    write_synthetic_store(location, spec)
    run_probe_grid(location, params=ProbeParams(probe="gaussian", k=3, n_permutations=199))
    results = xr.open_zarr(location, group="results/probe").load()
    passed = gate(results)
    planted = passed.sel(step=1000, attribute="Number")
    assert planted.all()
    noise = passed.where(~((passed.step == 1000) & (passed.attribute == "Number")), False)
    assert int(noise.sum()) <= 1  # 12 noise cells under BH at 0.05
    assert np.isfinite(results["gate_p"]).all()


def test_reproducibility_is_high_for_a_planted_set_and_gives_the_overlap_its_ceiling(
    tmp_path: object,
) -> None:
    import xalign

    location = str(tmp_path) + "/c.zarr"  # type: ignore[operator]
    spec = SyntheticSpec(
        languages=("en", "fr", "es"),
        steps=(0, 1000),
        layers=(0,),
        neurons=24,
        words=1500,
        attributes={"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem")},
        signals=(
            PlantedSignal(
                attribute="Number",
                neurons=(3, 7, 11),
                languages=("en", "fr", "es"),
                strength=3.0,
                steps=(1000,),
            ),
        ),
    )
    write_synthetic_store(location, spec)
    store = xalign.open_store(location)
    params = ProbeParams(probe="gaussian", k=3, n_permutations=199, n_resamples=2)
    xalign.persist(xalign.probe(store, params), store)
    reproducible = store.results("probe")["self_overlap"].sel(step=1000, attribute="Number").values
    assert (reproducible == 1).all()  # the three planted neurons, again on every resample
    pairs = xalign.overlap(store).sel(step=1000, layer=0).compute()
    # Every language's Number cell passes the gate; the counts say so per attribute.
    number = pairs.sel(attribute="Number")
    assert int(number["n_passed"]) == int(number["n_probed"]) == 3
    assert int(pairs["n_probed"].sel(attribute="Gender")) == 3
    assert int(pairs["n_passed"].sel(attribute="Gender")) == int(
        pairs["passed"].sel(attribute="Gender").sum()
    )
    from xalign.analysis.overlap import summarize

    summary = summarize(pairs)
    assert int(summary["n_probed"]) == 6
    assert int(summary["n_passed"]) == int(pairs["n_passed"].sum())
    assert float(pairs["mean_ceiling"].sel(attribute="Number")) == 1.0
    assert float(pairs["fraction_of_ceiling"].sel(attribute="Number")) == pytest.approx(1.0)
    ceiling = pairs["ceiling"].sel(attribute="Number").values
    assert np.isnan(np.diagonal(ceiling)).all()
    # The ceiling of a pair is the geometric mean of its two languages' reproducibility.
    noise = store.results("probe")["self_overlap"].sel(step=0, layer=0, attribute="Gender").values
    assert ((noise >= 0) & (noise <= 1)).all()
