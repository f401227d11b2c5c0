"""Statistics for neuron overlap: exact hypergeometric p-values, Holm's correction, correlations.

The p-value of an overlap is exact: under the null hypothesis that the two top-k sets are
independent, uniformly random k-subsets of the d neurons, their intersection is hypergeometric
(population d, k successes, k draws). This is what a permutation test of neuron labels
estimates by sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["METHODS", "Correlation", "correlate", "holm", "hypergeom_pvalue"]

METHODS = ("pearson", "spearman")
"""Correlation statistics :func:`correlate` knows."""

_BOOT_ELEMENTS = 1 << 22
"""Bootstrap resamples are drawn in batches of about this many values, to bound memory."""


def hypergeom_pvalue(intersection: ArrayLike, k: int, n_neurons: int) -> np.ndarray:
    """P(X >= x) for X = |A ∩ B|, A and B independent uniformly random k-subsets of ``n_neurons``.

    Parameters
    ----------
    intersection
        Observed intersection sizes ``x`` (any shape); NaN where there is none.
    k
        Size of each set.
    n_neurons
        Number of neurons the sets are drawn from.

    Returns
    -------
    numpy.ndarray
        float64 p-values of the shape of ``intersection``; NaN where it is NaN.
    """
    from scipy.stats import hypergeom

    _check_k(k, n_neurons)
    x = np.asarray(intersection, dtype=np.float64)
    missing = np.isnan(x)
    p = np.asarray(hypergeom.sf(np.where(missing, 0.0, x) - 1, M=n_neurons, n=k, N=k), dtype=np.float64)
    return np.where(missing, np.nan, p)


def _check_k(k: int, n_neurons: int) -> None:
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if n_neurons < k:
        raise ValueError(f"k ({k}) must not exceed the number of neurons ({n_neurons})")


def holm(p: ArrayLike, axis: int = -1) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values along ``axis``.

    With the m finite p-values of a family sorted, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is ``min(1, max_{j <= i} (m - j + 1) p_(j))``. NaNs are not hypotheses: they stay NaN
    and do not count in m.

    Parameters
    ----------
    p
        p-values; each 1-d slice along ``axis`` is one family.
    axis
        The axis along which the families lie.

    Returns
    -------
    numpy.ndarray
        float64 adjusted p-values, shaped like ``p``.
    """
    values = np.asarray(p, dtype=np.float64)
    if values.ndim == 0:
        raise ValueError("holm needs an array with at least one axis")
    moved = np.moveaxis(values, axis, -1)
    n = moved.shape[-1]
    if n == 0:
        return values.copy()
    order = np.argsort(moved, axis=-1, kind="stable")  # NaNs sort last
    ascending = np.take_along_axis(moved, order, axis=-1)
    m = np.sum(~np.isnan(moved), axis=-1, keepdims=True)
    adjusted = np.maximum.accumulate(ascending * (m - np.arange(n)), axis=-1)
    adjusted = np.minimum(adjusted, 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.moveaxis(out, -1, axis)


@dataclass(frozen=True, kw_only=True, slots=True)
class Correlation:
    """A correlation coefficient with its p-value and a percentile bootstrap confidence interval."""

    method: str
    """``"pearson"`` or ``"spearman"``."""
    r: float
    p_value: float
    ci_low: float
    """Percentile bootstrap interval: over clusters (steps and targets) when they were given,
    else over cells."""
    ci_high: float
    n: int
    """Cells used: pairs where both x and y are finite."""
    confidence: float
    resampled: str = "cells"
    """``"clusters"``: the two-way cluster bootstrap; ``"cells"``: cells as if independent."""


def correlate(
    x: ArrayLike,
    y: ArrayLike,
    *,
    method: str = "pearson",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: tuple[ArrayLike, ArrayLike] | None = None,
) -> Correlation:
    """Correlate ``x`` with ``y`` (one value per cell), with a bootstrap confidence interval.

    Pairs where either value is not finite are dropped. With fewer than 3 pairs left, or a
    constant ``x`` or ``y``, the coefficient, p-value and interval are NaN (``n`` is still
    reported). ``r`` is that of :func:`scipy.stats.pearsonr` or :func:`scipy.stats.spearmanr`.

    Without ``clusters`` the interval resamples cells with replacement and the p-value is
    scipy's: both treat cells as independent. With ``clusters = (a, b)`` (each cell's step and
    target language, say), the cells are a two-way grid whose rows share one factor and whose
    columns share another: each of ``n_boot`` resamples draws the a-levels and the b-levels with
    replacement, independently, and keeps every cell of the drawn levels, weighted by how often
    its two levels were drawn (the two-way cluster bootstrap). The interval is its percentile
    interval and the p-value twice the smaller bootstrap tail beyond 0. Spearman's coefficient is
    then Pearson's on the ranks of the whole sample. Resamples with a constant side are left out.

    Examples
    --------
    >>> correlate(overlap, transfer, clusters=(steps, targets)).ci_low

    Raises
    ------
    ValueError
        Unknown ``method``, ``x`` and ``y`` of different shapes, ``n_boot < 1`` or ``confidence``
        outside (0, 1).
    """
    from scipy.stats import pearsonr, rankdata, spearmanr

    if method not in METHODS:
        raise ValueError(f"unknown correlation method {method!r}; known: {', '.join(METHODS)}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same shape, got {xs.shape} and {ys.shape}")
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    n = int(xs.size)
    nan = float("nan")
    resampled = "cells" if clusters is None else "clusters"
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(
            method=method,
            r=nan,
            p_value=nan,
            ci_low=nan,
            ci_high=nan,
            n=n,
            confidence=confidence,
            resampled=resampled,
        )
    result = pearsonr(xs, ys) if method == "pearson" else spearmanr(xs, ys)
    p_value = float(result.pvalue)
    if clusters is None:
        boot = _bootstrap(xs, ys, spearman=method == "spearman", n_boot=n_boot, seed=seed)
    else:
        rows, columns = (np.asarray(c).ravel()[keep] for c in clusters)
        bx, by = (rankdata(xs), rankdata(ys)) if method == "spearman" else (xs, ys)
        boot = _cluster_bootstrap(bx, by, rows, columns, n_boot=n_boot, seed=seed)
        finite = boot[np.isfinite(boot)]
        if finite.size:
            p_value = float(min(1.0, 2 * min(np.mean(finite <= 0), np.mean(finite >= 0))))
    tail = 100 * (1 - confidence) / 2
    if np.isnan(boot).all():
        low, high = nan, nan
    else:
        low, high = (float(v) for v in np.nanpercentile(boot, [tail, 100 - tail]))
    return Correlation(
        method=method,
        r=float(result.statistic),
        p_value=p_value,
        ci_low=low,
        ci_high=high,
        n=n,
        confidence=confidence,
        resampled=resampled,
    )


def _cluster_bootstrap(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, columns: np.ndarray, *, n_boot: int, seed: int
) -> np.ndarray:
    """Weighted Pearson r on ``n_boot`` two-way cluster resamples (rows and columns drawn apart)."""
    rng = np.random.default_rng(seed)
    _, row = np.unique(rows, return_inverse=True)
    _, column = np.unique(columns, return_inverse=True)
    n_rows, n_columns = int(row.max()) + 1, int(column.max()) + 1
    out = np.empty(n_boot, dtype=np.float64)
    batch = max(1, _BOOT_ELEMENTS // max(x.size, 1))
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        row_counts = np.stack(
            [np.bincount(rng.integers(0, n_rows, n_rows), minlength=n_rows) for _ in range(size)]
        )
        column_counts = np.stack(
            [np.bincount(rng.integers(0, n_columns, n_columns), minlength=n_columns) for _ in range(size)]
        )
        weights = (row_counts[:, row] * column_counts[:, column]).astype(np.float64)
        out[start : start + size] = _weighted_pearson_rows(x, y, weights)
    return out


def _weighted_pearson_rows(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson's r of ``x`` with ``y`` under each row of ``weights``; NaN without spread."""
    total = weights.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    mx = (weights * x).sum(axis=1, keepdims=True) / safe
    my = (weights * y).sum(axis=1, keepdims=True) / safe
    xc, yc = x[None, :] - mx, y[None, :] - my
    sxx = (weights * xc * xc).sum(axis=1)
    syy = (weights * yc * yc).sum(axis=1)
    sxy = (weights * xc * yc).sum(axis=1)
    den = np.sqrt(sxx * syy)
    tiny = 1e-12 * np.maximum(np.abs(den), 1.0)
    r = np.divide(sxy, den, out=np.full_like(sxy, np.nan), where=den > tiny)
    clipped: np.ndarray = np.clip(r, -1.0, 1.0)
    return clipped


def _bootstrap(x: np.ndarray, y: np.ndarray, *, spearman: bool, n_boot: int, seed: int) -> np.ndarray:
    """The coefficient on ``n_boot`` resamples of the pairs; NaN for a resample with a constant side."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    n = x.size
    batch = max(1, _BOOT_ELEMENTS // n)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        index = rng.integers(0, n, size=(size, n))
        bx, by = x[index], y[index]
        constant = (np.ptp(bx, axis=1) == 0) | (np.ptp(by, axis=1) == 0)
        if spearman:
            bx, by = rankdata(bx, axis=1), rankdata(by, axis=1)
        out[start : start + size] = np.where(constant, np.nan, _pearson_rows(bx, by))
    return out


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``x`` with the same row of ``y``; NaN where a row has no spread."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(xc * xc, axis=1) * np.sum(yc * yc, axis=1))
    num = np.sum(xc * yc, axis=1)
    r = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
    clipped: np.ndarray = np.clip(r, -1.0, 1.0)
    return clipped
