"""Opening and querying a store: lazy, picklable, readable by plain xarray."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import xalign
from tests.conftest import SPEC
from xalign import dims, open_store
from xalign.errors import StoreValidationError
from xalign.store.location import StoreLocation
from xalign.testing import raise_if_dask_computes


def test_open_gives_lazy_dask_backed_views(synthetic_store: StoreLocation) -> None:
    with raise_if_dask_computes():
        store = open_store(synthetic_store)
        hidden = store.activations("en", step=1000, layer=1, split="train", where={"Number": "Plur"})
    assert hidden.chunks is not None
    assert hidden.dims == (dims.WORD, dims.NEURON)
    assert store.languages == ("en", "es", "fr")
    assert store.steps.tolist() == list(SPEC.steps)
    assert store.layers.tolist() == list(SPEC.layers)
    assert store.attributes("fr") == ("Number", "Gender")
    assert store.revisions[1000] == "synthetic_step1000"
    assert store.provenance["model_id"] == "xalign/synthetic"


def test_selection_matches_numpy_on_the_loaded_arrays(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    ds = store.dataset("fr").load()
    mask = (ds[dims.SPLIT] == "dev") & (ds["Number"] == "Sing")
    expected = ds[dims.HIDDEN].sel(step=2000, layer=2).isel(word=np.flatnonzero(mask.values))
    got = store.activations("fr", step=2000, layer=2, split="dev", where={"Number": "Sing"})
    np.testing.assert_array_equal(got.values, expected.values)
    assert set(got["form"].values.tolist()) <= set(ds["form"].values.tolist())


def test_selection_by_several_values_and_positions(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    got = store.activations("en", step=[0, 2000], layer=[0], where={"Gender": ["Masc", "Fem"]})
    assert got.sizes[dims.STEP] == 2
    assert set(got["Gender"].values.tolist()) == {"Masc", "Fem"}


def test_unknown_label_and_language_are_clear(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    with pytest.raises(KeyError, match=r"'Tense' is not a per-word label; known labels: .*Gender"):
        store.activations("en", where={"Tense": "Past"})
    with pytest.raises(KeyError, match=r"no language 'de'.*en, es, fr"):
        store.dataset("de")


def test_store_pickles(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.languages == store.languages
    xr.testing.assert_identical(clone.dataset("es").load(), store.dataset("es").load())


def test_planted_signal_is_where_it_was_planted(synthetic_store: StoreLocation) -> None:
    store = open_store(synthetic_store)
    planted = SPEC.signals[0]

    def gap(language: str, layer: int, neuron: int) -> float:
        ds = store.dataset(language).sel(step=1000, layer=layer)
        hidden = ds[dims.HIDDEN].astype(np.float32).isel(neuron=neuron)
        return abs(
            float(hidden.where(ds["Number"] == "Plur").mean() - hidden.where(ds["Number"] == "Sing").mean())
        )

    assert gap("en", 1, planted.neurons[0]) > 1.5
    assert gap("fr", 2, planted.neurons[1]) > 1.5
    assert gap("es", 1, planted.neurons[0]) < 0.5  # not planted in es
    assert gap("en", 0, planted.neurons[0]) < 0.5  # not planted in layer 0
    assert gap("en", 1, 0) < 0.5  # not a planted neuron


def test_open_refuses_an_invalid_store_listing_problems(synthetic_dir: Path) -> None:
    group = zarr.open_group(str(synthetic_dir), mode="r+", use_consolidated=False)
    del group["languages/en/lemma"]
    with pytest.raises(StoreValidationError, match="languages/en/lemma: required array is missing"):
        open_store(str(synthetic_dir))


def test_plain_xarray_reads_the_store_without_xalign(synthetic_dir: Path) -> None:
    tree = xr.open_datatree(str(synthetic_dir), engine="zarr")
    en = tree["languages/en"]
    assert en[dims.HIDDEN].dims == (dims.STEP, dims.LAYER, dims.WORD, dims.NEURON)
    assert "Number" in en.coords
    assert "revision" in tree.coords
    ds = xr.open_zarr(str(synthetic_dir), group="languages/fr")
    assert ds[dims.HIDDEN].dtype == np.float16
    assert {"form", "lemma", "upos", "split", "Number"} <= set(ds.coords)
    for name, array in zarr.open_group(str(synthetic_dir), mode="r").arrays():
        assert array.metadata.dimension_names is not None, name


def test_a_store_travels_to_worker_processes(synthetic_dir: Path) -> None:
    import dask

    store = open_store(str(synthetic_dir))

    def plural_mean(s: xalign.Store) -> float:
        return float(s.activations("en", step=0, layer=0, where={"Number": "Plur"}).astype("float32").mean())

    remote = dask.delayed(plural_mean)(store).compute(scheduler="processes", num_workers=1)
    assert remote == pytest.approx(plural_mean(store))


def test_dask_names_a_store_by_its_location_without_pickling_it(tmp_path: Path) -> None:
    from dask.base import tokenize

    from xalign.testing import SyntheticSpec, write_synthetic_store

    a, b = str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")
    for location in (a, b):
        write_synthetic_store(location, SyntheticSpec())
    assert tokenize(open_store(a)) == tokenize(open_store(a))
    assert tokenize(open_store(a)) != tokenize(open_store(b))
    # A task's name must not come from the opened tree (slow on a real store's labels).
    from xalign.store.schema import latest_version

    assert open_store(a).__dask_tokenize__() == ("xalign.Store", a, latest_version())
