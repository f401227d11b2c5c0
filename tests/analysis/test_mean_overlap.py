"""The mean-overlap test: exact against enumeration, calibrated under pure noise, powerful when
languages share their neurons."""

from __future__ import annotations

from itertools import combinations, product

import numpy as np
import pytest
import xarray as xr

from xalign.analysis.mean_overlap import mean_overlap_null, mean_overlap_test
from xalign.analysis.overlap import overlap


def _pairs(sets: np.ndarray, n_neurons: int) -> xr.Dataset:
    """Overlap of (cell, language, rank) neuron sets."""
    selected = xr.DataArray(sets, dims=("cell", "language", "rank"))
    return overlap(selected, k=sets.shape[-1], n_neurons=n_neurons)


def test_the_null_matches_enumeration_of_every_placement() -> None:
    d, k, languages = 6, 2, 3
    subsets = [set(c) for c in combinations(range(d), k)]
    exact = np.array(
        [
            np.mean([len(a & b) / k for a, b in combinations(chosen, 2)])
            for chosen in product(subsets, repeat=languages)
        ]
    )
    drawn = mean_overlap_null(languages, k, d, 40000, 0)
    for threshold in np.unique(exact):
        assert np.mean(drawn >= threshold - 1e-12) == pytest.approx(
            np.mean(exact >= threshold - 1e-12), abs=0.01
        )


def test_under_pure_noise_five_percent_of_cells_are_rejected() -> None:
    rng = np.random.default_rng(0)
    d, k, languages, cells = 40, 5, 6, 600
    sets = np.stack([[rng.choice(d, k, replace=False) for _ in range(languages)] for _ in range(cells)])
    tested = mean_overlap_test(_pairs(sets, d), n_permutations=999, seed=1)
    rejected = float((tested["p_value"] <= 0.05).mean())
    # 600 cells: the 99.9% range of Binomial(600, 0.05)/600 is about 0.025 to 0.08; the null is
    # discrete, so the test may be a little conservative.
    assert 0.02 <= rejected <= 0.08, rejected
    assert tested["mean_overlap"].mean() == pytest.approx(k / d, abs=0.01)


def test_shared_sets_are_significant_and_missing_languages_are_left_out() -> None:
    rng = np.random.default_rng(2)
    d, k = 100, 10
    shared = rng.choice(d, k, replace=False)
    sets = np.stack([[shared, shared, rng.choice(d, k, replace=False)]])
    tested = mean_overlap_test(_pairs(sets, d), n_permutations=999)
    assert float(tested["p_value"][0]) == pytest.approx(1 / 1000)
    assert int(tested["n_languages"][0]) == 3
    missing = sets.copy()
    missing[0, 2] = -1  # the third language has no set (its probe failed the gate)
    tested = mean_overlap_test(_pairs(missing, d), n_permutations=999)
    assert int(tested["n_languages"][0]) == 2
    assert float(tested["mean_overlap"][0]) == 1.0
    alone = sets.copy()
    alone[0, 1:] = -1
    assert np.isnan(float(mean_overlap_test(_pairs(alone, d))["p_value"][0]))
