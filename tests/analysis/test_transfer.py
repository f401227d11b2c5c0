"""Built-in zero-shot transfer: the classifier, planted transfer found, laziness, filters."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from xalign import dims, open_store
from xalign.analysis.cells import kept_values
from xalign.analysis.transfer import (
    ShrinkageLDA,
    TransferParams,
    linear_classifier,
    transfer_attributes,
    transfer_grid,
    transfer_slab,
)
from xalign.store.store import Store
from xalign.testing import PlantedSignal, SyntheticSpec, raise_if_dask_computes, write_synthetic_store

# Number is encoded on neurons 3 and 7 in en and fr, and on other neurons (12, 14) in es,
# only at step 1000, layer 1: en and fr share a code, es has its own.
SPEC = SyntheticSpec(
    languages=("en", "fr", "es"),
    steps=(0, 1000),
    layers=(0, 1),
    neurons=16,
    words=3000,
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
            attribute="Number", neurons=(12, 14), languages=("es",), steps=(1000,), layers=(1,), strength=3.0
        ),
    ),
)
CHANCE = 0.5  # two values, drawn uniformly
PARAMS = TransferParams()


@pytest.fixture(scope="module")
def store() -> Store:
    location = zarr.storage.MemoryStore()
    write_synthetic_store(location, SPEC)
    return open_store(location)


@pytest.fixture(scope="module")
def grid(store: Store) -> xr.Dataset:
    return transfer_grid(store, params=PARAMS).compute()


def _blobs(rng: np.random.Generator, centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(len(centres)), n)
    return centres[y] + rng.standard_normal((len(y), centres.shape[1])), y


def test_the_classifier_separates_gaussian_blobs() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0, 0, 0], [4, 0, 0, 0, 0], [0, 4, 0, 0, 0]])
    X, y = _blobs(rng, centres, 200)
    X_test, y_test = _blobs(rng, centres, 200)
    for shrinkage in (0.0, 0.1, 1.0):
        lda = ShrinkageLDA(shrinkage).fit(X * 50 + 7, y, n_classes=3)
        assert np.mean(lda.predict(X_test * 50 + 7) == y_test) > 0.95, shrinkage


def test_the_classifier_uses_the_covariance_without_shrinkage() -> None:
    # Classes differ along x - y, while x + y carries large shared noise: a rule that ignores
    # the covariance (shrinkage 1 on raw axes) is worse than the discriminant that whitens it.
    rng = np.random.default_rng(1)
    n = 400
    y = np.repeat([0, 1], n)
    shared = rng.standard_normal(2 * n) * 5
    X = np.stack([shared + (y - 0.5) * 1.0, shared - (y - 0.5) * 1.0], axis=1)
    X += rng.standard_normal(X.shape) * 0.3
    full = np.mean(ShrinkageLDA(0.0).fit(X, y, 2).predict(X) == y)
    isotropic = np.mean(ShrinkageLDA(1.0).fit(X, y, 2).predict(X) == y)
    assert full > 0.95
    assert isotropic < 0.8


def test_the_classifier_weighs_priors_and_survives_constant_features() -> None:
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((500, 3))
    y = (np.arange(500) % 10 == 0).astype(np.int64)  # 90% class 0, pure noise features
    assert (ShrinkageLDA(0.1).fit(noise, y, 2).predict(noise) == 0).mean() > 0.95
    centres = np.array([[0.0, 0, 5], [3, 0, 5], [0, 3, 5]])
    X, y3 = _blobs(rng, centres, 100)
    X[:, 2] = 5.0  # a constant feature
    for shrinkage in (0.0, 0.1, 1.0):
        lda = ShrinkageLDA(shrinkage).fit(X, y3, n_classes=3)
        assert np.isfinite(lda.decision_function(X)).all()
        assert np.mean(lda.predict(X) == y3) > 0.85
    constant = np.ones((20, 2))
    assert set(ShrinkageLDA().fit(constant, np.arange(20) % 2, 2).predict(constant)) <= {0, 1}


def test_a_class_without_training_words_is_never_predicted() -> None:
    rng = np.random.default_rng(3)
    X, y = _blobs(rng, np.array([[0.0, 0], [5, 5]]), 50)
    lda = ShrinkageLDA().fit(X, y * 2, n_classes=3)  # classes 0 and 2
    assert set(lda.predict(rng.standard_normal((200, 2)) * 10)) <= {0, 2}


def test_classifier_and_params_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shrinkage must be between 0 and 1, got 1\.5"):
        TransferParams(shrinkage=1.5)
    with pytest.raises(ValueError, match="min_count must be positive, got 0"):
        TransferParams(min_count=0)
    with pytest.raises(ValueError, match=r"class ids must lie in 0\.\.1"):
        ShrinkageLDA().fit(np.zeros((3, 2)), np.array([0, 1, 2]), n_classes=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        ShrinkageLDA().predict(np.zeros((1, 2)))
    assert linear_classifier(TransferParams(shrinkage=0.3)).shrinkage == 0.3


def test_planted_transfer_is_found_where_the_code_is_shared(grid: xr.Dataset) -> None:
    accuracy = grid.accuracy.sel(attribute="Number")
    cell = accuracy.sel(step=1000, layer=1)
    for source, target in (("en", "fr"), ("fr", "en"), ("en", "en"), ("fr", "fr"), ("es", "es")):
        assert float(cell.sel(language=source, language_other=target)) > 0.9, (source, target)
    for source, target in (("en", "es"), ("fr", "es"), ("es", "en"), ("es", "fr")):
        assert abs(float(cell.sel(language=source, language_other=target)) - CHANCE) < 0.1, (source, target)
    baseline = grid.baseline.sel(attribute="Number", step=1000, layer=1)
    assert (abs(baseline - CHANCE) < 0.1).all()
    # Where the signal is absent, every pair (the diagonal included) is near chance.
    for step, layer in ((0, 0), (0, 1), (1000, 0)):
        assert (abs(accuracy.sel(step=step, layer=layer) - CHANCE) < 0.1).all(), (step, layer)


def test_the_grid_covers_every_kept_attribute_and_upos(grid: xr.Dataset, store: Store) -> None:
    assert list(grid.attribute.values) == ["Gender", "Number", dims.UPOS]
    assert grid.accuracy.dims == (dims.STEP, dims.LAYER, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER)
    assert list(grid.language.values) == list(grid.language_other.values) == list(store.languages)
    assert grid.accuracy.dtype == np.float32
    assert grid.n_test.dtype == np.int64
    assert grid.attrs["parameters"] == {**PARAMS.to_dict(), "attributes": list(grid.attribute.values)}
    # No planted part of speech: four values, near a quarter everywhere.
    assert (abs(grid.accuracy.sel(attribute=dims.UPOS) - 0.25) < 0.1).all()
    assert np.isfinite(grid.accuracy).all()


def test_targets_are_scored_on_their_test_words_with_a_source_value(store: Store, grid: xr.Dataset) -> None:
    labels = store.dataset("fr")
    test = labels[dims.SPLIT].values == "test"
    for attribute, values in (("Number", {"Sing", "Plur"}), ("Gender", {"Masc", "Fem", "Neut"})):
        expected = int((test & np.isin(labels[attribute].values, list(values))).sum())
        assert (grid.n_test.sel(attribute=attribute, language_other="fr") == expected).all()


def test_the_grid_is_lazy_and_equals_the_slab_it_is_made_of(store: Store) -> None:
    with raise_if_dask_computes():
        lazy = transfer_grid(store, params=PARAMS, steps=[1000], layers=[0, 1], languages=["fr", "en"])
    assert isinstance(lazy.accuracy.data, da.Array)
    slab = transfer_slab(store, 1000, 1, ["fr", "en"], list(lazy.attribute.values), PARAMS)
    computed = lazy.sel(step=1000, layer=1).compute()
    for name, expected in slab.items():
        np.testing.assert_array_equal(computed[name].values, expected)
    assert float(computed.accuracy.sel(attribute="Number", language="fr", language_other="en")) > 0.9


def test_filters_and_missing_attributes_leave_nan(store: Store) -> None:
    strict = TransferParams(min_count=60)
    kept = {
        language: kept_values(store.labels(language), ["Gender"], min_count=60).get("Gender", ())
        for language in ("en", "fr", "es")
    }
    # The scenario (from the synthetic labels): en keeps 3 genders, fr 2 of them, es none.
    assert kept == {"en": ("Fem", "Masc", "Neut"), "fr": ("Fem", "Neut"), "es": ()}
    out = transfer_slab(store, 1000, 1, ["en", "fr", "es"], ["Gender", "Number", "Case"], strict)
    gender, number, case = 0, 1, 2
    for name in ("accuracy", "baseline"):
        assert np.isnan(out[name][case]).all()
        assert np.isnan(out[name][gender, 2]).all()  # es as a source keeps no gender
        assert np.isfinite(out[name][gender, :2]).all()  # es as a target is scored
        assert np.isfinite(out[name][number]).all()
    assert (out["n_test"][case] == 0).all()
    assert (out["n_test"][gender, 2] == 0).all()
    for t, target in enumerate(("en", "fr", "es")):
        labels = store.labels(target)
        test = labels[dims.SPLIT].values == "test"
        for s, source in enumerate(("en", "fr")):
            expected = int((test & np.isin(labels["Gender"].values, list(kept[source]))).sum())
            assert out["n_test"][gender, s, t] == expected, (source, target)
    assert out["n_test"][gender, 0, 1] > out["n_test"][gender, 1, 1]  # fr's Masc only counts from en

    assert transfer_attributes(store, store.languages, TransferParams(min_count=90)) == ("Number",)
    chosen = TransferParams(attributes=("Number",))
    assert transfer_attributes(store, store.languages, chosen) == ("Number",)
    assert transfer_grid(store, params=chosen).attrs["parameters"]["attributes"] == ["Number"]
    with pytest.raises(ValueError, match="at least one step and one layer"):
        transfer_grid(store, params=PARAMS, steps=[])


def test_words_without_a_vector_are_left_out() -> None:
    location = zarr.storage.MemoryStore()
    spec = SyntheticSpec(languages=("en", "fr"), steps=(0,), layers=(0,), neurons=8, words=1500, signals=())
    write_synthetic_store(location, spec)
    store = open_store(location)
    labels = store.dataset("fr")
    before = transfer_slab(store, 0, 0, ["en", "fr"], ["Number"], PARAMS)
    fr_test = np.flatnonzero((labels[dims.SPLIT].values == "test") & (labels["Number"].values != ""))
    cut = fr_test[:5]
    hidden = zarr.open_group(location, mode="r+")["languages/fr/hidden"]
    values = np.asarray(hidden[...])
    values[0, 0, cut] = np.nan  # (step, layer, word, neuron): words cut by truncation
    hidden[...] = values
    after = transfer_slab(open_store(location, validate=False), 0, 0, ["en", "fr"], ["Number"], PARAMS)
    assert (before["n_test"][0, :, 1] - after["n_test"][0, :, 1] == 5).all()
    assert (before["n_test"][0, :, 0] == after["n_test"][0, :, 0]).all()
    assert np.isfinite(after["accuracy"]).all()


def test_the_lazy_transfer_and_the_stored_one_have_the_same_values(store: Store) -> None:
    import xalign

    lazy = xalign.transfer(store, layers=[1]).compute()
    outcome = xalign.persist(xalign.transfer(store, layers=[1]), store)
    assert outcome.path == "analyses/transfer/linear"
    assert outcome.report is not None
    assert outcome.report.slabs_run == 2
    stored = store.analysis("transfer", "linear")
    assert "not an independent test" in xalign.api.ANALYSES["transfer"].description
    assert stored.attrs["measure"].startswith("probe transfer")
    assert np.isnan(stored["accuracy"].sel(layer=0)).all()  # not asked for: never computed
    stored = stored.sel(layer=[1]).compute()
    for name in lazy.data_vars:
        np.testing.assert_array_equal(lazy[name].values, stored[name].values, err_msg=name)
    assert lazy.attrs["parameters"] == stored.attrs["parameters"]
    again = xalign.persist(xalign.transfer(store, layers=[1]), store)
    assert again.report is not None
    assert (again.report.slabs_run, again.report.slabs_already_done) == (0, 2)
