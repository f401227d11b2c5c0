"""The Gaussian probe against scipy; vectorised greedy selection against the reference's loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from xalign.analysis.gaussian import GaussianProbe, gaussian_statistics
from xalign.analysis.metrics import accuracy, entropy_bits, log_likelihood, normalised_mi, score
from xalign.analysis.selection import select_neurons, select_neurons_naive


def planted(n: int = 600, d: int = 12, values: int = 3, signal: tuple[int, ...] = (2, 7), seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, values, n)
    X = rng.standard_normal((n, d))
    for j, neuron in enumerate(signal):
        X[:, neuron] += 1.5 * (y - (values - 1) / 2) * (1 if j % 2 == 0 else -1)
    return X, y


def test_metrics_against_direct_computations() -> None:
    y = np.array([0, 1, 1, 2, 2, 2])
    p = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]
    )
    lp = np.log(p)
    h = entropy_bits(y, 3)
    assert h == pytest.approx(stats.entropy(np.bincount(y) / 6, base=2))
    ce = -np.mean(np.log2(p[np.arange(6), y]))
    assert normalised_mi(lp, y, h) == pytest.approx((h - ce) / h)
    assert accuracy(lp, y) == pytest.approx(5 / 6)
    assert log_likelihood(lp, y) == pytest.approx(np.mean(np.log(p[np.arange(6), y])))
    stacked = np.stack([lp, np.log(np.full((6, 3), 1 / 3))])
    assert score("mi", stacked, y, h)[1] == pytest.approx((h - np.log2(3)) / h)
    with pytest.raises(ValueError, match="criterion must be one of"):
        score("f1", lp, y, h)


def test_gaussian_posterior_matches_scipy() -> None:
    X, y = planted()
    probe = GaussianProbe().fit(X, y)
    subset = [7, 2, 5]
    joint = np.stack(
        [
            probe.log_prior_[v]
            + stats.multivariate_normal(
                probe.means_[v][subset], probe.covariances_[v][np.ix_(subset, subset)]
            ).logpdf(X[:, subset])
            for v in range(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        probe.log_proba(X, subset), joint - logsumexp(joint, axis=1, keepdims=True), atol=1e-9
    )
    np.testing.assert_allclose(
        probe.log_proba(X, []), np.broadcast_to(probe.log_prior_, (len(X), 3)), atol=1e-12
    )


def test_sufficient_statistics_add_up_across_chunks() -> None:
    X, y = planted()
    whole = gaussian_statistics(X, y, 3)
    parts = gaussian_statistics(X[:250], y[:250], 3) + gaussian_statistics(X[250:], y[250:], 3)
    a, b = GaussianProbe().fit_statistics(whole), GaussianProbe().fit_statistics(parts)
    np.testing.assert_allclose(a.covariances_, b.covariances_, atol=1e-10)


@pytest.mark.parametrize("selected", [[], [3], [7, 2, 11]])
def test_candidates_equal_the_loop(selected: list[int]) -> None:
    X, y = planted()
    probe = GaussianProbe().fit(X, y)
    candidates = np.setdiff1d(np.arange(12), selected)
    batched = probe.log_proba_candidates(X, selected, candidates)
    looped = np.stack([probe.log_proba(X, [*selected, int(d)]) for d in candidates])
    np.testing.assert_allclose(batched, looped, atol=1e-9)


@pytest.mark.parametrize("criterion", ["mi", "accuracy", "loglik"])
def test_vectorised_selection_equals_the_naive_loop(criterion: str) -> None:
    X, y = planted(n=900, d=16)
    probe = GaussianProbe().fit(X[:600], y[:600])
    dev, test = (X[600:750], y[600:750]), (X[750:], y[750:])
    fast = select_neurons(probe, dev, test, k=6, criterion=criterion, n_values=3)
    slow = select_neurons_naive(probe, dev, test, k=6, criterion=criterion, n_values=3)
    np.testing.assert_array_equal(fast.neurons, slow.neurons)
    for metric in fast.dev:
        np.testing.assert_allclose(fast.dev[metric], slow.dev[metric])


def test_planted_neurons_come_first_with_high_mi_and_noise_gives_none() -> None:
    X, y = planted(n=1500, d=20, signal=(4, 13))
    probe = GaussianProbe().fit(X[:1000], y[:1000])
    result = select_neurons(probe, (X[1000:1250], y[1000:1250]), (X[1250:], y[1250:]), k=5, n_values=3)
    assert set(result.neurons[:2].tolist()) == {4, 13}
    assert result.test["mi"][1] > 0.5
    assert result.test["accuracy"][1] > 0.75  # the Bayes-optimal accuracy here is about 0.81
    noise = np.random.default_rng(1).standard_normal((1500, 20))
    probe = GaussianProbe().fit(noise[:1000], y[:1000])
    none = select_neurons(probe, (noise[1000:1250], y[1000:1250]), (noise[1250:], y[1250:]), k=3, n_values=3)
    assert abs(none.test["mi"][0]) < 0.05


def test_oas_shrinkage_equals_scikit_learns() -> None:
    from sklearn.covariance import oas

    from xalign.analysis.gaussian import oas_shrunk

    rng = np.random.default_rng(3)
    for n, d in ((40, 30), (300, 12), (5, 50)):
        X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
        expected, weight = oas(X, assume_centered=True)
        got, got_weight = oas_shrunk(X.T @ X, n)
        np.testing.assert_allclose(got, expected, atol=1e-12)
        assert got_weight == pytest.approx(weight)


def test_the_niw_map_estimate_is_the_papers_code() -> None:
    """Σ_π = (S_π + diag(S_π)/n_π) / (n_π + 2d + 4), the data-dependent prior of trainer/map.py."""
    X, y = planted(n=90, d=12)
    probe = GaussianProbe(covariance="niw-map").fit(X, y, n_classes=3)
    for v in range(3):
        Xv = X[y == v]
        n, d = Xv.shape
        scatter = (Xv - Xv.mean(axis=0)).T @ (Xv - Xv.mean(axis=0))
        expected = (scatter + np.diag(np.diag(scatter)) / n) / (n + 2 * d + 4)
        np.testing.assert_allclose(probe.covariances_[v], expected, atol=1e-10)


@pytest.mark.parametrize("covariance", ["tied", "per-value", "niw-map"])
def test_batched_scoring_is_exact_for_every_covariance(covariance: str) -> None:
    X, y = planted(n=300, d=10)
    probe = GaussianProbe(covariance=covariance).fit(X, y)
    batched = probe.log_proba_candidates(X, [2, 5], np.array([0, 1, 3, 9]))
    looped = np.stack([probe.log_proba(X, [2, 5, d]) for d in (0, 1, 3, 9)])
    np.testing.assert_allclose(batched, looped, atol=1e-9)


def test_with_fewer_words_per_value_than_neurons_the_tied_probe_stays_calibrated() -> None:
    """The case the old default failed: n_v < d. Held-out MI with all neurons must stay near the
    truth (positive here), where per-value covariances give large negative MI."""
    rng = np.random.default_rng(5)
    d, n_train, n_test = 96, 120, 2000
    y = rng.integers(0, 2, n_train + n_test)
    X = rng.standard_normal((len(y), d))
    X[:, :4] += 1.2 * (2 * y[:, None] - 1)
    everything = np.arange(d)
    mi = {}
    for covariance in ("tied", "per-value"):
        probe = GaussianProbe(covariance=covariance).fit(X[:n_train], y[:n_train], n_classes=2)
        log_p = probe.log_proba(X[n_train:], everything)
        mi[covariance] = float(normalised_mi(log_p, y[n_train:], entropy_bits(y[n_train:], 2)))
    assert mi["tied"] > 0.3
    assert mi["per-value"] < 0
