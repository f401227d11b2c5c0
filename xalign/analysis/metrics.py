"""Probe metrics from log-probabilities: normalised mutual information, accuracy, log-likelihood.

Every function takes log-probabilities shaped ``(..., word, value)`` and true value ids
``(word,)`` and reduces over words, so the metrics of many candidate neuron subsets come out
of one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

__all__ = [
    "CRITERIA",
    "Criterion",
    "accuracy",
    "cross_entropy_bits",
    "entropy_bits",
    "log_likelihood",
    "log_normalise",
    "normalised_mi",
    "score",
]

Criterion = Literal["mi", "accuracy", "loglik"]


def log_normalise(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """``scores - logsumexp(scores)`` along ``axis`` (the few values of an attribute).

    Written as elementwise operations across the values rather than a reduction along a
    short axis, which is several times faster for the (candidate, word, value) arrays of a
    greedy step; a leading values axis (``axis=0``) is the fastest layout.
    """
    values = [np.take(scores, v, axis=axis) for v in range(scores.shape[axis])]
    peak = np.maximum.reduce(values)
    total = np.zeros_like(peak)
    for value in values:
        total += np.exp(value - peak)
    result: np.ndarray = scores - np.expand_dims(peak + np.log(total), axis)
    return result


def entropy_bits(y: np.ndarray, n_values: int) -> float:
    """H(Π) in bits, from the value frequencies of ``y``."""
    counts = np.bincount(y, minlength=n_values).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def cross_entropy_bits(log_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ĥ(Π | h): the mean of -log2 p(true value) over words."""
    picked = np.take_along_axis(log_proba, y.reshape((1,) * (log_proba.ndim - 2) + (-1, 1)), axis=-1)
    result: np.ndarray = -picked[..., 0].mean(axis=-1) / np.log(2)
    return result


def normalised_mi(log_proba: np.ndarray, y: np.ndarray, prior_bits: float) -> np.ndarray:
    """(H(Π) - Ĥ(Π | h)) / H(Π): the share of the value's entropy the probe explains."""
    result: np.ndarray = (prior_bits - cross_entropy_bits(log_proba, y)) / prior_bits
    return result


def accuracy(log_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of words whose most probable value is the true one."""
    result: np.ndarray = (log_proba.argmax(axis=-1) == y).mean(axis=-1)
    return result


def log_likelihood(log_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean log p(true value) in nats."""
    result: np.ndarray = -cross_entropy_bits(log_proba, y) * np.log(2)
    return result


CRITERIA: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "mi": normalised_mi,
    "accuracy": lambda lp, y, _prior: accuracy(lp, y),
    "loglik": lambda lp, y, _prior: log_likelihood(lp, y),
}


def score(criterion: str, log_proba: np.ndarray, y: np.ndarray, prior_bits: float) -> np.ndarray:
    """The named criterion (higher is better) over the leading axes of ``log_proba``."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    return CRITERIA[criterion](log_proba, y, prior_bits)
