"""Parallel-sentence similarity: translations beat mismatched pairs only when they share meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xalign import dims, open_store
from xalign.analysis.similarity import SimilarityError, cosine, parallel_similarity
from xalign.testing import SyntheticSpec, raise_if_dask_computes, write_synthetic_store


def _store(tmp_path: Path, parallel: float) -> str:
    location = str(tmp_path / f"p{parallel}.zarr")
    spec = SyntheticSpec(
        languages=("en", "fr", "es"), steps=(0, 1), layers=(0, 1), words=300, parallel=parallel
    )
    write_synthetic_store(location, spec)
    return location


def test_cosine_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    got = cosine(xr.DataArray(a, dims=("x", dims.NEURON)), xr.DataArray(b, dims=("x", dims.NEURON)))
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(got.values, expected)
    zero = cosine(
        xr.DataArray(np.zeros((1, 8)), dims=("x", dims.NEURON)), xr.DataArray(b[:1], dims=("x", dims.NEURON))
    )
    assert np.isnan(zero.values).all()


def test_shared_meaning_lifts_matched_pairs_above_the_mismatched_baseline(tmp_path: Path) -> None:
    with raise_if_dask_computes():
        lazy = parallel_similarity(open_store(_store(tmp_path, parallel=1.0)), reference="en")
    result = lazy.compute()
    assert result["mean_cosine"].dims == (dims.STEP, dims.LAYER, dims.LANGUAGE)
    assert np.isnan(result["mean_cosine"].sel(language="en")).all()
    for pooling in ("mean", "last"):
        matched = result[f"{pooling}_cosine"].sel(language=["fr", "es"])
        baseline = result[f"{pooling}_baseline"].sel(language=["fr", "es"])
        assert (matched > baseline + 0.2).all(), pooling
    assert result["n_sentences"].sel(language="fr").item() == 30


def test_without_shared_meaning_matched_pairs_sit_at_the_baseline(tmp_path: Path) -> None:
    result = parallel_similarity(open_store(_store(tmp_path, parallel=0.0))).compute()
    gap = result["mean_cosine"] - result["mean_baseline"]
    assert float(np.abs(gap.sel(language=["fr", "es"])).max()) < 0.1


def test_unknown_reference_and_unaligned_sentences_are_clear_errors(tmp_path: Path) -> None:
    store = open_store(_store(tmp_path, parallel=0.0))
    with pytest.raises(SimilarityError, match="reference language 'de' is not in the store"):
        parallel_similarity(store, reference="de")
