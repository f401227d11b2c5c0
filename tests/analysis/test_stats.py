"""Exact overlap p-values, Holm's correction and bootstrap correlations, against references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xalign.analysis.stats import Correlation, correlate, holm, hypergeom_pvalue

# --- hypergeom_pvalue -------------------------------------------------------------------------


def brute_force_pvalue(x: int, k: int, n_neurons: int) -> float:
    """P(|A ∩ B| >= x) by enumerating every pair of k-subsets of range(n_neurons)."""
    subsets = [frozenset(c) for c in itertools.combinations(range(n_neurons), k)]
    hits = sum(len(a & b) >= x for a in subsets for b in subsets)
    return hits / len(subsets) ** 2


@pytest.mark.parametrize(("n_neurons", "k"), [(7, 3), (6, 2), (8, 4), (5, 1), (5, 5)])
def test_pvalue_equals_brute_force_enumeration(n_neurons: int, k: int) -> None:
    x = np.arange(k + 1)
    expected = [brute_force_pvalue(int(v), k, n_neurons) for v in x]
    np.testing.assert_allclose(hypergeom_pvalue(x, k, n_neurons), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("n_neurons", "k"), [(1024, 50), (4096, 10), (64, 32)])
def test_pvalue_equals_scipy_hypergeom(n_neurons: int, k: int) -> None:
    x = np.arange(k + 1)
    expected = [scipy.stats.hypergeom(M=n_neurons, n=k, N=k).sf(v - 1) for v in x]
    got = hypergeom_pvalue(x.astype(np.float64), k, n_neurons)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[0] == 1.0
    assert np.all(np.diff(got) <= 0)
    assert got[-1] == pytest.approx(1 / math.comb(n_neurons, k), rel=1e-9)


def test_pvalue_keeps_shape_and_nan() -> None:
    x = np.array([[0.0, np.nan], [3.0, 1.0]])
    p = hypergeom_pvalue(x, 3, 7)
    assert p.shape == (2, 2)
    assert p.dtype == np.float64
    assert np.isnan(p[0, 1])
    assert p[0, 0] == 1.0
    assert p[1, 0] == pytest.approx(brute_force_pvalue(3, 3, 7))


@pytest.mark.parametrize(("k", "n_neurons"), [(0, 10), (11, 10)])
def test_pvalue_rejects_bad_k(k: int, n_neurons: int) -> None:
    with pytest.raises(ValueError, match=str(k)):
        hypergeom_pvalue(np.array([1.0]), k, n_neurons)


# --- holm ---------------------------------------------------------------------------------------


def textbook_holm(p: list[float]) -> list[float]:
    """Holm's step-down procedure on one family, NaNs skipped, written as in a textbook."""
    finite = [i for i, v in enumerate(p) if not math.isnan(v)]
    m = len(finite)
    order = sorted(finite, key=lambda i: p[i])
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(order):  # rank 0 is the smallest p-value
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def test_holm_known_values() -> None:
    got = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])


def test_holm_matches_textbook_with_nans_and_ties_along_each_axis() -> None:
    rng = np.random.default_rng(1)
    p = rng.choice([0.001, 0.01, 0.02, 0.2, 0.5, 0.9, np.nan], size=(4, 5, 6))  # many ties
    p[0, 0, :] = np.nan
    for axis in (0, 1, 2, -1):
        got = holm(p, axis=axis)
        moved = np.moveaxis(p, axis, -1)
        expected = np.array([textbook_holm(list(row)) for row in moved.reshape(-1, moved.shape[-1])])
        expected = np.moveaxis(expected.reshape(moved.shape), -1, axis)
        np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
        assert np.array_equal(np.isnan(got), np.isnan(p))


def test_holm_ties_get_equal_adjusted_values() -> None:
    got = holm(np.array([0.02, 0.01, 0.02, 0.02]))
    np.testing.assert_allclose(got, [0.06, 0.04, 0.06, 0.06])


def test_holm_nan_is_not_a_hypothesis() -> None:
    np.testing.assert_allclose(holm(np.array([0.01, np.nan, 0.02])), [0.02, np.nan, 0.02], equal_nan=True)
    assert np.isnan(holm(np.full(3, np.nan))).all()
    assert holm(np.empty((2, 0))).shape == (2, 0)


@settings(deadline=None, max_examples=200)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.one_of(st.floats(0, 1), st.just(np.nan)),
    ),
    st.integers(0, 2),
)
def test_holm_properties(p: np.ndarray, axis_choice: int) -> None:
    axis = axis_choice % p.ndim
    got = holm(p, axis=axis)
    assert np.array_equal(np.isnan(got), np.isnan(p))
    finite = ~np.isnan(p)
    assert np.all(got[finite] >= p[finite])
    assert np.all(got[finite] <= 1)
    moved, moved_got = np.moveaxis(p, axis, -1), np.moveaxis(got, axis, -1)
    for row, adjusted in zip(
        moved.reshape(-1, moved.shape[-1]), moved_got.reshape(-1, moved.shape[-1]), strict=True
    ):
        np.testing.assert_allclose(adjusted, textbook_holm(list(row)), rtol=1e-12, equal_nan=True)


# --- correlate --------------------------------------------------------------------------------


def noisy_line(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, 0.5 * x + rng.normal(size=n)


@pytest.mark.parametrize(
    ("method", "reference"), [("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr)]
)
def test_correlate_matches_scipy(method: str, reference: object) -> None:
    x, y = noisy_line(40, 0)
    y[::5] = np.round(y[::5])  # ties for the rank correlation
    got = correlate(x, y, method=method, n_boot=500)
    expected = reference(x, y)  # type: ignore[operator]
    assert isinstance(got, Correlation)
    assert got.method == method
    assert got.r == pytest.approx(expected.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-8)
    assert got.n == 40
    assert got.confidence == 0.95
    assert got.ci_low < got.r < got.ci_high


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_matches_a_loop_over_the_same_resamples(method: str) -> None:
    x, y = noisy_line(15, 3)
    n_boot, seed = 300, 7
    index = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    reference = scipy.stats.pearsonr if method == "pearson" else scipy.stats.spearmanr
    rs = [reference(x[i], y[i]).statistic for i in index]
    low, high = np.percentile(rs, [5, 95])
    got = correlate(x, y, method=method, n_boot=n_boot, confidence=0.9, seed=seed)
    assert got.ci_low == pytest.approx(low, rel=1e-9)
    assert got.ci_high == pytest.approx(high, rel=1e-9)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_interval_narrows_with_more_cells_and_widens_with_confidence(method: str) -> None:
    small = correlate(*noisy_line(30, 0), method=method)
    large = correlate(*noisy_line(3000, 0), method=method)
    assert large.ci_high - large.ci_low < (small.ci_high - small.ci_low) / 3
    for result in (small, large):
        assert result.ci_low <= result.r <= result.ci_high
    wide = correlate(*noisy_line(30, 0), method=method, confidence=0.99)
    narrow = correlate(*noisy_line(30, 0), method=method, confidence=0.5)
    assert wide.ci_high - wide.ci_low > small.ci_high - small.ci_low > narrow.ci_high - narrow.ci_low


def test_correlate_is_seeded() -> None:
    x, y = noisy_line(25, 2)
    assert correlate(x, y, seed=4) == correlate(x, y, seed=4)
    assert correlate(x, y, seed=4).ci_low != correlate(x, y, seed=5).ci_low


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_non_finite_pairs_are_dropped(method: str) -> None:
    x, y = noisy_line(30, 1)
    x_bad, y_bad = x.copy(), y.copy()
    x_bad[3], y_bad[7], x_bad[11], y_bad[11] = np.nan, np.inf, -np.inf, np.nan
    keep = np.ones(30, dtype=bool)
    keep[[3, 7, 11]] = False
    got = correlate(x_bad.reshape(5, 6), y_bad.reshape(5, 6), method=method, n_boot=200)
    assert got == correlate(x[keep], y[keep], method=method, n_boot=200)
    assert got.n == 27


@pytest.mark.parametrize(
    ("x", "y", "n"),
    [
        ([1.0, 2.0], [2.0, 1.0], 2),
        ([1.0, 2.0, np.nan, 4.0], [1.0, 3.0, 2.0, np.nan], 2),
        ([], [], 0),
        ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], 4),
        ([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0], 4),
    ],
)
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_too_few_or_constant_gives_nan(x: list[float], y: list[float], n: int, method: str) -> None:
    got = correlate(x, y, method=method)
    assert got.n == n
    assert all(math.isnan(v) for v in (got.r, got.p_value, got.ci_low, got.ci_high))


def test_correlate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kendall"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], method="kendall")
    with pytest.raises(ValueError, match="shape"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        correlate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_boot=0)
