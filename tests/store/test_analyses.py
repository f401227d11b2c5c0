"""Output groups: written whole, reused with the same parameters, refused with others, schema-valid;
stale, not deleted, when the store grows."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xalign import dims, open_store
from xalign.store.location import StoreLocation
from xalign.store.outputs import (
    ResultsError,
    analysis_path,
    open_output_dataset,
    output_names,
    stored_parameters,
    write_output,
)
from xalign.testing import assert_valid_store

PATH = analysis_path("similarity", "parallel")


def write_analysis(store: StoreLocation, kind: str, name: str, result: xr.Dataset, **kwargs: bool) -> bool:
    return write_output(store, analysis_path(kind, name), result, **kwargs)


def open_analysis(store: StoreLocation, kind: str, name: str) -> xr.Dataset:
    return open_output_dataset(store, analysis_path(kind, name))


def _similarity(store: StoreLocation, value: float, reference: str = "en") -> xr.Dataset:
    opened = open_store(store)
    shape = (len(opened.steps), len(opened.layers), len(opened.languages))
    data = {
        name: ((dims.STEP, dims.LAYER, dims.LANGUAGE), np.full(shape, value))
        for name in ("mean_cosine", "last_cosine", "mean_baseline", "last_baseline")
    }
    data["n_sentences"] = ((dims.LANGUAGE,), np.arange(shape[2], dtype=np.int64))
    return xr.Dataset(
        data,
        coords={
            dims.STEP: opened.steps,
            dims.LAYER: opened.layers,
            dims.LANGUAGE: np.asarray(opened.languages, dtype=object),
        },
        attrs={"parameters": {"reference": reference, "excluded_steps": []}},
    )


def test_written_analysis_reads_back_lazily_and_keeps_the_store_valid(synthetic_store: StoreLocation) -> None:
    assert write_analysis(synthetic_store, "similarity", "parallel", _similarity(synthetic_store, 0.5))
    assert_valid_store(synthetic_store)
    back = open_analysis(synthetic_store, "similarity", "parallel")
    assert back["mean_cosine"].chunks is not None  # Dask-backed
    np.testing.assert_array_equal(back["mean_cosine"].values, 0.5)
    assert output_names(synthetic_store, "analyses/similarity") == ["parallel"]
    assert stored_parameters(synthetic_store, PATH) == {
        "reference": "en",
        "excluded_steps": [],
    }
    # The whole store still opens as one DataTree, the analysis aligned with the root's axes.
    tree = open_store(synthetic_store).tree
    node = tree["analyses/similarity/parallel"]
    assert isinstance(node, xr.DataTree)
    assert node.to_dataset()["mean_cosine"].dims == (dims.STEP, dims.LAYER, dims.LANGUAGE)


def test_same_parameters_reuse_other_parameters_are_refused(synthetic_store: StoreLocation) -> None:
    write_analysis(synthetic_store, "similarity", "parallel", _similarity(synthetic_store, 0.5))
    assert not write_analysis(synthetic_store, "similarity", "parallel", _similarity(synthetic_store, 0.9))
    np.testing.assert_array_equal(
        open_analysis(synthetic_store, "similarity", "parallel")["mean_cosine"], 0.5
    )
    other = _similarity(synthetic_store, 0.9, reference="fr")
    with pytest.raises(ResultsError, match="reference: 'en' -> 'fr'"):
        write_analysis(synthetic_store, "similarity", "parallel", other)
    assert write_analysis(synthetic_store, "similarity", "parallel", other, overwrite=True)
    np.testing.assert_array_equal(
        open_analysis(synthetic_store, "similarity", "parallel")["mean_cosine"], 0.9
    )


def test_missing_analysis_names_the_ones_there_are(synthetic_store: StoreLocation) -> None:
    with pytest.raises(ResultsError, match="none has been run"):
        open_analysis(synthetic_store, "similarity", "parallel")
    write_analysis(synthetic_store, "similarity", "a", _similarity(synthetic_store, 0.5))
    with pytest.raises(ResultsError, match="there are: a"):
        open_analysis(synthetic_store, "similarity", "b")


def test_a_tampered_analysis_is_reported_by_validation(synthetic_store: StoreLocation) -> None:
    from xalign.store.validate import find_violations

    broken = _similarity(synthetic_store, 0.5).rename({"mean_cosine": "cosine"})
    write_analysis(synthetic_store, "similarity", "parallel", broken)
    paths = [v.path for v in find_violations(synthetic_store)]
    assert "analyses/similarity/parallel/mean_cosine" in paths
