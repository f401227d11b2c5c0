"""Is the mean overlap across language pairs above chance? A test that respects the pairs' dependence.

The pairs of one (step, layer, attribute) are not independent: with L languages there are
L(L-1)/2 pairs but only L sets, and each set enters L-1 pairs. Averaging pairwise p-values, or
counting pairs significant after a correction, ignores that. The exact null of "no alignment"
is that each language's top-k set is placed among the d neurons independently of the others: a
random permutation of neuron indices per language, which makes each set a uniformly random
k-subset. The statistic is the mean overlap coefficient over the pairs of the languages with a
set; its null distribution depends only on (number of languages, k, d), so it is drawn once
per number of languages (``n_permutations`` draws) and every cell with that number shares it.
The p-value is ``(1 + #{null >= observed}) / (1 + n_permutations)``.

Examples
--------
>>> pairs = xalign.overlap(store, k=10)
>>> test = mean_overlap_test(pairs, n_permutations=2000)
>>> test[["mean_overlap", "p_value"]].sel(attribute="Number", layer=12).to_dataframe()
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import xarray as xr

from xalign import dims

__all__ = ["mean_overlap_null", "mean_overlap_test"]


@lru_cache(maxsize=64)
def mean_overlap_null(n_languages: int, k: int, n_neurons: int, n_permutations: int, seed: int) -> np.ndarray:
    """Draws of the mean pairwise overlap coefficient of ``n_languages`` random k-subsets of
    ``n_neurons`` neurons (read-only; cached)."""
    if n_languages < 2:
        raise ValueError(f"a mean over pairs needs at least two languages, got {n_languages}")
    rng = np.random.default_rng([seed, n_languages, k, n_neurons])
    draws = np.empty(n_permutations)
    pairs = n_languages * (n_languages - 1) / 2
    batch = max(1, (1 << 22) // (n_languages * n_neurons))
    for start in range(0, n_permutations, batch):
        size = min(batch, n_permutations - start)
        keys = rng.random((size, n_languages, n_neurons))
        members = np.zeros((size, n_languages, n_neurons), dtype=np.float32)
        np.put_along_axis(members, np.argpartition(keys, k - 1, axis=-1)[..., :k], 1.0, axis=-1)
        shared = np.einsum("bld,bmd->blm", members, members)
        off_diagonal = (shared.sum(axis=(1, 2)) - k * n_languages) / 2
        draws[start : start + size] = off_diagonal / pairs / k
    draws.flags.writeable = False
    return draws


def mean_overlap_test(pairs: xr.Dataset, *, n_permutations: int = 1000, seed: int = 0) -> xr.Dataset:
    """The mean overlap over language pairs of each cell and its permutation p-value against chance.

    Parameters
    ----------
    pairs
        An overlap result (:func:`xalign.overlap` or :func:`xalign.analysis.overlap.overlap`):
        ``intersection`` over (..., language, language_other), attrs ``k`` and ``n_neurons``
        (or in ``parameters``). A language counts where it has a set (a finite intersection
        with some other language).

    Returns
    -------
    xr.Dataset
        Over the dims of ``pairs`` but the two language dims: ``mean_overlap``,
        ``p_value`` (NaN with fewer than two languages) and ``n_languages``.
    """
    parameters = pairs.attrs.get("parameters", pairs.attrs)
    k, n_neurons = int(parameters["k"]), int(parameters["n_neurons"])
    core = [dims.LANGUAGE, dims.LANGUAGE_OTHER]
    intersection = pairs["intersection"]
    if intersection.chunks is not None:
        intersection = intersection.chunk(dict.fromkeys(core, -1))
    mean, p_value, languages = xr.apply_ufunc(
        _test_block,
        intersection,
        input_core_dims=[core],
        output_core_dims=[[], [], []],
        kwargs={"k": k, "n_neurons": n_neurons, "n_permutations": n_permutations, "seed": seed},
        dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.int64],
    )
    return xr.Dataset(
        {"mean_overlap": mean, "p_value": p_value, "n_languages": languages},
        attrs={"k": k, "n_neurons": n_neurons, "chance": k / n_neurons, "n_permutations": n_permutations},
    )


def _test_block(
    intersection: np.ndarray, *, k: int, n_neurons: int, n_permutations: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    *batch, n, _ = intersection.shape
    flat = intersection.reshape(-1, n, n)
    mean = np.full(len(flat), np.nan)
    p_value = np.full(len(flat), np.nan)
    languages = np.zeros(len(flat), dtype=np.int64)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    for i, cell in enumerate(flat):
        present = np.isfinite(cell).any(axis=1)
        count = int(present.sum())
        languages[i] = count
        if count < 2:
            continue
        values = cell[np.ix_(present, present)][upper[:count, :count]]
        mean[i] = float(values.mean()) / k
        null = mean_overlap_null(count, k, n_neurons, n_permutations, seed)
        p_value[i] = (1.0 + float(np.sum(null >= mean[i] - 1e-12))) / (1.0 + n_permutations)
    shape = tuple(batch)
    return mean.reshape(shape), p_value.reshape(shape), languages.reshape(shape)
