"""Top-k neuron overlap between languages: hand-made answers, references, symmetry, laziness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from xalign import dims
from xalign.analysis import overlap as overlap_module
from xalign.analysis.overlap import overlap, pair_mean, summarize, with_language
from xalign.analysis.stats import holm, hypergeom_pvalue
from xalign.testing import raise_if_dask_computes

LANGUAGES = ["en", "fr", "de"]


def selected_array(ids: np.ndarray, *, languages: list[str] | None = None) -> xr.DataArray:
    """Neuron ids shaped (step, layer, language, attribute, rank), like the probe results."""
    n_step, n_layer, n_language, n_attribute, n_rank = ids.shape
    return xr.DataArray(
        ids.astype(np.int32),
        dims=(dims.STEP, dims.LAYER, dims.LANGUAGE, dims.ATTRIBUTE, dims.RANK),
        coords={
            dims.STEP: np.arange(n_step) * 1000,
            dims.LAYER: np.arange(n_layer),
            dims.LANGUAGE: np.asarray((languages or LANGUAGES)[:n_language], dtype=object),
            dims.ATTRIBUTE: np.asarray(["Number", "Gender", "Case", "Tense"][:n_attribute], dtype=object),
            dims.RANK: np.arange(n_rank),
        },
        name="selected_neuron",
    )


def one_cell(*rows: list[int]) -> xr.DataArray:
    """One (step, layer, attribute) cell, one row of ids per language."""
    return selected_array(np.array(rows)[None, None, :, None, :])


def cell_matrix(ds: xr.Dataset, name: str) -> np.ndarray:
    return ds[name].isel({dims.STEP: 0, dims.LAYER: 0, dims.ATTRIBUTE: 0}).values


def random_selected(seed: int, shape: tuple[int, ...], n_neurons: int, *, missing: float = 0.1) -> np.ndarray:
    """Distinct ids per set (as a greedy selection makes them), some sets cut short with -1."""
    rng = np.random.default_rng(seed)
    *outer, n_rank = shape
    ids = np.argsort(rng.random((*outer, n_neurons)), axis=-1)[..., :n_rank]
    cut = rng.random(outer) < missing
    ids[cut, -1] = -1
    return ids


def reference_intersection(ids: np.ndarray, k: int) -> np.ndarray:
    """|A ∩ B| with Python sets, for ids shaped (..., language, rank)."""
    *outer, n_language, _ = ids.shape
    out = np.full((*outer, n_language, n_language), np.nan)
    for index in np.ndindex(*outer):
        for i, j in itertools.product(range(n_language), repeat=2):
            a, b = ids[index][i, :k], ids[index][j, :k]
            if i != j and (a >= 0).all() and (b >= 0).all():
                out[(*index, i, j)] = len(set(a.tolist()) & set(b.tolist()))
    return out


# --- overlap ------------------------------------------------------------------------------------


def test_known_intersections_overlap_and_jaccard() -> None:
    ds = overlap(one_cell([0, 1, 2, 3], [3, 2, 8, 9], [0, 1, 2, 3]), k=4, n_neurons=20)
    nan = np.nan
    expected = np.array([[nan, 2, 4], [2, nan, 2], [4, 2, nan]])
    np.testing.assert_array_equal(cell_matrix(ds, "intersection"), expected)
    np.testing.assert_allclose(cell_matrix(ds, "overlap"), expected / 4)
    np.testing.assert_allclose(cell_matrix(ds, "jaccard"), expected / (8 - expected))
    assert cell_matrix(ds, "jaccard")[0, 1] == pytest.approx(1 / 3)
    assert ds.attrs == {"k": 4, "n_neurons": 20, "chance": 0.2}
    for name in ("intersection", "overlap", "jaccard", "p_value", "p_holm"):
        assert ds[name].dtype == np.float64
        assert np.isnan(np.diagonal(cell_matrix(ds, name))).all()


def test_output_dims_and_coordinates() -> None:
    ds = overlap(selected_array(random_selected(0, (2, 3, 3, 2, 5), 30)), k=4, n_neurons=30)
    expected = (dims.STEP, dims.LAYER, dims.LANGUAGE, dims.LANGUAGE_OTHER, dims.ATTRIBUTE)
    for name in ds.data_vars:
        assert ds[name].dims == expected
    assert list(ds[dims.LANGUAGE_OTHER].values) == LANGUAGES
    assert list(ds[dims.LANGUAGE].values) == LANGUAGES
    assert dims.RANK not in ds.coords
    assert list(ds[dims.STEP].values) == [0, 1000]

    # Other dim orders are kept too; LANGUAGE_OTHER always follows LANGUAGE.
    turned = selected_array(random_selected(0, (2, 3, 3, 2, 5), 30)).transpose(
        dims.ATTRIBUTE, dims.RANK, dims.LANGUAGE, dims.STEP, dims.LAYER
    )
    ds = overlap(turned, k=4, n_neurons=30)
    assert ds["overlap"].dims == (dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER, dims.STEP, dims.LAYER)


def test_missing_neuron_makes_the_pair_nan() -> None:
    ds = overlap(one_cell([0, 1, 2], [0, 1, -1], [2, 1, 0]), k=3, n_neurons=10)
    nan = np.nan
    np.testing.assert_array_equal(
        cell_matrix(ds, "intersection"), [[nan, nan, 3], [nan, nan, nan], [3, nan, nan]]
    )
    assert np.isnan(cell_matrix(ds, "p_value")[1]).all()
    assert np.isnan(cell_matrix(ds, "p_holm")[:, 1]).all()


def test_only_the_first_k_ranks_count() -> None:
    cell = one_cell([0, 1, 2, 3, -1], [0, 1, 7, 9, 5], [5, 6, 0, 2, 3])
    ds2 = overlap(cell, k=2, n_neurons=10)
    np.testing.assert_array_equal(cell_matrix(ds2, "intersection")[0], [np.nan, 2, 0])
    np.testing.assert_array_equal(cell_matrix(ds2, "intersection")[1], [2, np.nan, 0])
    ds4 = overlap(cell, k=4, n_neurons=10)
    np.testing.assert_array_equal(cell_matrix(ds4, "intersection")[0], [np.nan, 2, 2])
    np.testing.assert_allclose(cell_matrix(ds4, "overlap")[0], [np.nan, 0.5, 0.5])
    assert ds4.attrs["k"] == 4
    # Rank 4 of en is -1: with k = 5, every pair with en is missing.
    ds5 = overlap(cell, k=5, n_neurons=10)
    assert np.isnan(cell_matrix(ds5, "intersection")[0]).all()
    assert cell_matrix(ds5, "intersection")[1, 2] == 2  # {0, 5}


def test_repeated_ids_count_once() -> None:
    ds = overlap(one_cell([1, 1, 2], [1, 2, 3]), k=3, n_neurons=10)
    np.testing.assert_array_equal(cell_matrix(ds, "intersection"), [[np.nan, 2], [2, np.nan]])


def test_bad_arguments() -> None:
    cell = one_cell([0, 1, 2], [3, 4, 5])
    with pytest.raises(ValueError, match=r"k \(4\).*\(3\)"):
        overlap(cell, k=4, n_neurons=10)
    with pytest.raises(ValueError, match="positive"):
        overlap(cell, k=0, n_neurons=10)
    with pytest.raises(ValueError, match=r"k \(3\).*\(2\)"):
        overlap(cell, k=3, n_neurons=2)
    with pytest.raises(ValueError, match=dims.RANK):
        overlap(cell.isel({dims.RANK: 0}), k=1, n_neurons=10)
    with pytest.raises(ValueError, match=dims.LANGUAGE):
        overlap(cell.isel({dims.LANGUAGE: 0}), k=1, n_neurons=10)


def test_against_set_reference_and_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches force the pairwise comparison through several passes.
    monkeypatch.setattr(overlap_module, "_PAIR_ELEMENTS", 100)
    ids = random_selected(3, (3, 2, 4, 3, 6), 12, missing=0.15)
    k, n_neurons = 5, 12
    ds = overlap(selected_array(ids, languages=["en", "fr", "de", "es"]), k=k, n_neurons=n_neurons)
    # ids are (step, layer, language, attribute, rank); the reference wants language, rank last.
    expected = reference_intersection(np.moveaxis(ids, 2, 3), k)  # (step, layer, attribute, L, L)
    got = ds["intersection"].transpose(dims.STEP, dims.LAYER, dims.ATTRIBUTE, ...).values
    np.testing.assert_array_equal(got, expected)
    assert np.isfinite(got).any()
    np.testing.assert_allclose(ds["p_value"], hypergeom_pvalue(ds["intersection"].values, k, n_neurons))

    # p_holm: Holm within each (step, layer, attribute) over the unordered pairs, loop by loop.
    p = ds["p_value"].transpose(dims.STEP, dims.LAYER, dims.ATTRIBUTE, ...).values
    p_holm = ds["p_holm"].transpose(dims.STEP, dims.LAYER, dims.ATTRIBUTE, ...).values
    pairs = list(itertools.combinations(range(4), 2))
    for index in np.ndindex(p.shape[:3]):
        adjusted = holm(np.array([p[index][i, j] for i, j in pairs]))
        for (i, j), value in zip(pairs, adjusted, strict=True):
            np.testing.assert_equal(p_holm[index][i, j], value)
            np.testing.assert_equal(p_holm[index][j, i], value)
    finite = np.isfinite(p)
    assert np.array_equal(finite, np.isfinite(p_holm))
    assert np.all(p_holm[finite] >= p[finite])


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_language=st.integers(1, 5),
    n_rank=st.integers(1, 6),
    data=st.data(),
)
def test_overlap_properties(seed: int, n_language: int, n_rank: int, data: st.DataObject) -> None:
    n_neurons = data.draw(st.integers(n_rank, 3 * n_rank + 2))
    k = data.draw(st.integers(1, n_rank))
    ids = random_selected(seed, (2, 1, n_language, 2, n_rank), n_neurons, missing=0.2)
    ds = overlap(selected_array(ids, languages=["a", "b", "c", "d", "e"]), k=k, n_neurons=n_neurons)
    for name in ds.data_vars:
        values = ds[name].values
        np.testing.assert_array_equal(values, ds[name].transpose(..., dims.LANGUAGE, dims.ATTRIBUTE).values)
    finite = ds["overlap"].notnull()
    assert ((ds["overlap"] >= 0) & (ds["overlap"] <= 1)).where(finite, True).all()
    assert ((ds["jaccard"] <= ds["overlap"]) & (ds["jaccard"] >= 0)).where(finite, True).all()
    for name in ("p_value", "p_holm"):
        assert ((ds[name] >= 0) & (ds[name] <= 1)).where(finite, True).all()
        assert (ds[name].notnull() == finite).all()
    assert (ds["p_holm"] >= ds["p_value"]).where(finite, True).all()
    expected = reference_intersection(np.moveaxis(ids, 2, 3), k)
    got = ds["intersection"].transpose(dims.STEP, dims.LAYER, dims.ATTRIBUTE, ...).values
    np.testing.assert_array_equal(got, expected)


def test_symmetric_by_transposing_languages() -> None:
    ds = overlap(selected_array(random_selected(5, (2, 2, 3, 2, 4), 10)), k=4, n_neurons=10)
    swapped = ds.rename({dims.LANGUAGE: "tmp"}).rename(
        {dims.LANGUAGE_OTHER: dims.LANGUAGE, "tmp": dims.LANGUAGE_OTHER}
    )
    xr.testing.assert_identical(ds, swapped.transpose(*ds["overlap"].dims))


# --- summaries ----------------------------------------------------------------------------------


def summary_case() -> xr.Dataset:
    """One step, one layer, two attributes, three languages, k = 4 of 100 neurons."""
    number = [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 50, 51]]  # en-fr 4, en-de 2, fr-de 2
    gender = [[10, 11, 12, 13], [20, 21, 22, 23], [10, 11, 12, -1]]  # en-fr 0, de missing
    ids = np.stack([np.array(number), np.array(gender)], axis=1)[None, None]  # (1, 1, L, A, k)
    return overlap(selected_array(ids), k=4, n_neurons=100)


def test_summarize_known_answer() -> None:
    ds = summary_case()
    p = hypergeom_pvalue(np.array([4.0, 2.0, 2.0]), 4, 100)
    number_holm = holm(p)
    summary = summarize(ds, alpha=0.01)
    assert summary["mean_overlap"].dims == (dims.STEP, dims.LAYER)
    cells = [1.0, 0.5, 0.5, 0.0]  # unordered (pair, attribute) cells that are finite
    assert summary["n_pairs"].item() == 4
    assert summary["n_pairs"].dtype == np.int64
    assert summary["mean_overlap"].item() == pytest.approx(np.mean(cells))
    assert summary["mean_jaccard"].item() == pytest.approx(np.mean([1.0, 1 / 3, 1 / 3, 0.0]))
    assert summary["multiple_of_chance"].item() == pytest.approx(np.mean(cells) / 0.04)
    expected_significant = (np.sum(number_holm < 0.01) + 0) / 4
    assert number_holm[0] < 0.01 < number_holm[1]  # so the fraction is not trivially 0 or 1
    assert summary["significant"].item() == pytest.approx(expected_significant)
    assert summary.attrs == {"k": 4, "n_neurons": 100, "chance": 0.04, "alpha": 0.01}
    assert summarize(ds, alpha=0.5)["significant"].item() == pytest.approx(3 / 4)


def test_summarize_with_nothing_finite_is_nan() -> None:
    ds = overlap(one_cell([0, 1, -1], [0, 1, 2]), k=3, n_neurons=10)
    summary = summarize(ds)
    assert summary["n_pairs"].item() == 0
    for name in ("mean_overlap", "mean_jaccard", "multiple_of_chance", "significant"):
        assert np.isnan(summary[name].item())


def test_summarize_rejects_bad_input() -> None:
    ds = summary_case()
    with pytest.raises(ValueError, match="alpha"):
        summarize(ds, alpha=1.5)
    with pytest.raises(ValueError, match="chance"):
        summarize(ds.drop_attrs())
    with pytest.raises(ValueError, match=dims.LANGUAGE_OTHER):
        summarize(ds.isel({dims.LANGUAGE_OTHER: 0}))


def test_pair_mean_keeps_attributes() -> None:
    mean = pair_mean(summary_case())
    assert mean.dims == (dims.STEP, dims.LAYER, dims.ATTRIBUTE)
    np.testing.assert_allclose(mean.values[0, 0], [(1.0 + 0.5 + 0.5) / 3, 0.0])


def test_with_language() -> None:
    ds = summary_case()
    fr = with_language(ds, "fr")
    assert list(fr[dims.LANGUAGE_OTHER].values) == ["en", "de"]
    assert dims.LANGUAGE not in fr.dims
    assert fr["overlap"].dims == (dims.STEP, dims.LAYER, dims.LANGUAGE_OTHER, dims.ATTRIBUTE)
    np.testing.assert_allclose(fr["overlap"].sel({dims.ATTRIBUTE: "Number"}).values[0, 0], [1.0, 0.5])
    with pytest.raises(ValueError, match=r"'xx'.*en, fr, de"):
        with_language(ds, "xx")


# --- laziness -----------------------------------------------------------------------------------


def test_dask_in_dask_out_without_computing() -> None:
    ids = random_selected(9, (3, 2, 3, 2, 6), 16, missing=0.2)
    eager_selected = selected_array(ids)
    lazy_selected = eager_selected.chunk({dims.STEP: 1, dims.LANGUAGE: 2, dims.RANK: 4})
    with raise_if_dask_computes():
        lazy = overlap(lazy_selected, k=5, n_neurons=16)
        lazy_summary = summarize(lazy)
        lazy_mean = pair_mean(lazy)
        lazy_en = with_language(lazy, "en")
    for name in lazy.data_vars:
        assert lazy[name].chunks is not None
    assert lazy_summary["mean_overlap"].chunks is not None
    assert lazy_mean.chunks is not None
    eager = overlap(eager_selected, k=5, n_neurons=16)
    xr.testing.assert_identical(lazy.compute(), eager)
    xr.testing.assert_identical(lazy_summary.compute(), summarize(eager))
    xr.testing.assert_identical(lazy_mean.compute(), pair_mean(eager))
    xr.testing.assert_identical(lazy_en.compute(), with_language(eager, "en"))
