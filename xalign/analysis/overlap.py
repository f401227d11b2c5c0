"""Overlap of the top-k neurons of two languages for one attribute, with exact significance.

For every cell of the probing results (typically each (step, layer, attribute)) and every pair of
languages, :func:`overlap` compares the sets of the first k selected neurons: their intersection,
overlap coefficient ``|A ∩ B| / k`` (chance level ``k / d``), Jaccard index, the exact
hypergeometric p-value of the intersection and its Holm–Bonferroni correction over the unordered
language pairs of the cell. Everything stays lazy under Dask.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.stats import holm, hypergeom_pvalue

__all__ = ["overlap", "pair_mean", "summarize", "with_language"]

_PAIR_ELEMENTS = 1 << 24
"""Pairwise comparisons are made in batches of about this many elements, to bound memory."""


def overlap(selected: xr.DataArray, *, k: int, n_neurons: int) -> xr.Dataset:
    """Compare the top-k neuron sets of every pair of languages.

    Parameters
    ----------
    selected
        Neuron ids by rank (e.g. the probe results' ``selected_neuron``), with dims
        :data:`~xalign.dims.LANGUAGE` and :data:`~xalign.dims.RANK` among others; -1 (or any
        negative or non-finite value) where no neuron was chosen.
    k
        Size of the sets: ranks ``0 .. k-1``.
    n_neurons
        Number of neurons the sets were chosen from (d).

    Returns
    -------
    xarray.Dataset
        Dims of ``selected`` minus RANK, with :data:`~xalign.dims.LANGUAGE_OTHER` (same
        coordinate as LANGUAGE) right after LANGUAGE. float64 variables ``intersection``,
        ``overlap``, ``jaccard``, ``p_value`` and ``p_holm``, NaN on the diagonal and wherever
        either set has a missing neuron among its first k. ``p_holm`` is corrected within each
        cell of the other dims over the unordered pairs, and symmetric. attrs ``k``,
        ``n_neurons``, ``chance`` (= k / n_neurons).

    Raises
    ------
    ValueError
        Missing LANGUAGE or RANK, a LANGUAGE_OTHER dim already present, or k not in
        ``1 .. min(size of RANK, n_neurons)``.
    """
    for name in (dims.LANGUAGE, dims.RANK):
        if name not in selected.dims:
            raise ValueError(f"selected needs a {name!r} dim, has {tuple(selected.dims)}")
    if dims.LANGUAGE_OTHER in selected.dims:
        raise ValueError(f"selected must not already have a {dims.LANGUAGE_OTHER!r} dim")
    ranks = selected.sizes[dims.RANK]
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    if k > ranks:
        raise ValueError(f"k ({k}) exceeds the number of ranks selected ({ranks})")
    if n_neurons < k:
        raise ValueError(f"k ({k}) must not exceed the number of neurons ({n_neurons})")

    top = selected.isel({dims.RANK: slice(0, k)}).drop_vars(dims.RANK, errors="ignore")
    top = _single_chunk(top, dims.LANGUAGE, dims.RANK)
    n_languages = top.sizes[dims.LANGUAGE]
    core = [dims.LANGUAGE, dims.LANGUAGE_OTHER]
    intersection = xr.apply_ufunc(
        _intersections,
        top,
        input_core_dims=[[dims.LANGUAGE, dims.RANK]],
        output_core_dims=[core],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {dims.LANGUAGE_OTHER: n_languages}},
    )
    if dims.LANGUAGE in top.coords:
        intersection = intersection.assign_coords(
            {dims.LANGUAGE_OTHER: (dims.LANGUAGE_OTHER, top[dims.LANGUAGE].values)}
        )
    p_value = xr.apply_ufunc(
        hypergeom_pvalue,
        intersection,
        kwargs={"k": k, "n_neurons": n_neurons},
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    p_holm = xr.apply_ufunc(
        _holm_pairs,
        _single_chunk(p_value, *core),
        input_core_dims=[core],
        output_core_dims=[core],
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    out = xr.Dataset(
        {
            "intersection": intersection,
            "overlap": intersection / k,
            "jaccard": intersection / (2 * k - intersection),
            "p_value": p_value,
            "p_holm": p_holm,
        },
        attrs={"k": k, "n_neurons": n_neurons, "chance": k / n_neurons},
    )
    order: list[Hashable] = []
    for dim in top.dims:
        if dim == dims.RANK:
            continue
        order.append(dim)
        if dim == dims.LANGUAGE:
            order.append(dims.LANGUAGE_OTHER)
    return out.transpose(*order)


def _single_chunk(array: xr.DataArray, *names: str) -> xr.DataArray:
    """``array`` with the dims ``names`` in one chunk each (a no-op for numpy-backed arrays)."""
    if array.chunks is None:
        return array
    return array.chunk(dict.fromkeys(names, -1))


def _intersections(ids: np.ndarray) -> np.ndarray:
    """Pairwise intersection sizes of the sets in the rows of ``ids``, shaped (..., L, k) -> (..., L, L).

    A row with a negative or non-finite id has no set (NaN with every language); the diagonal is
    NaN. A repeated id in a row counts once.
    """
    *batch, n_languages, k = ids.shape
    values = ids.reshape(-1, n_languages, k).astype(np.float64)
    valid = np.all(values >= 0, axis=-1)  # False for NaN too
    # Repeats become NaN, which equals nothing: each set counts its distinct ids.
    repeat = np.tril(values[..., :, None] == values[..., None, :], -1).any(axis=-1)
    values[repeat] = np.nan
    counts = np.empty((values.shape[0], n_languages, n_languages), dtype=np.float64)
    step = max(1, _PAIR_ELEMENTS // max(1, n_languages * n_languages * k * k))
    for start in range(0, values.shape[0], step):
        part = values[start : start + step]
        equal = part[:, :, None, :, None] == part[:, None, :, None, :]
        counts[start : start + step] = equal.any(axis=-1).sum(axis=-1)
    counts[~(valid[:, :, None] & valid[:, None, :])] = np.nan
    diagonal = np.arange(n_languages)
    counts[:, diagonal, diagonal] = np.nan
    return counts.reshape(*batch, n_languages, n_languages)


def _holm_pairs(p: np.ndarray) -> np.ndarray:
    """Holm over the upper triangle (i < j) of the last two axes, written back symmetrically."""
    n_languages = p.shape[-1]
    first, second = np.triu_indices(n_languages, 1)
    adjusted = holm(p[..., first, second], axis=-1)
    out = np.full(p.shape, np.nan, dtype=np.float64)
    out[..., first, second] = adjusted
    out[..., second, first] = adjusted
    return out


def _unordered(ds: xr.Dataset) -> xr.DataArray:
    """True on each unordered language pair once: LANGUAGE before LANGUAGE_OTHER in language order.

    The order is that of the LANGUAGE coordinate, followed by LANGUAGE_OTHER values it lacks.
    """
    for name in (dims.LANGUAGE, dims.LANGUAGE_OTHER):
        if name not in ds.dims:
            raise ValueError(f"the overlap dataset needs a {name!r} dim, has {tuple(ds.dims)}")
    if dims.LANGUAGE in ds.coords and dims.LANGUAGE_OTHER in ds.coords:
        languages = list(ds[dims.LANGUAGE].values)
        others = list(ds[dims.LANGUAGE_OTHER].values)
        position = {name: i for i, name in enumerate(languages)}
        for name in others:
            position.setdefault(name, len(position))
        mask = np.array([[position[a] < position[b] for b in others] for a in languages], dtype=bool)
    else:
        mask = np.triu(np.ones((ds.sizes[dims.LANGUAGE], ds.sizes[dims.LANGUAGE_OTHER]), dtype=bool), 1)
    return xr.DataArray(mask, dims=(dims.LANGUAGE, dims.LANGUAGE_OTHER))


def _mean(values: xr.DataArray, over: list[str]) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean of the finite ``values`` over the dims ``over`` (NaN where none), and their count."""
    count = values.notnull().sum(over)
    return values.sum(over, skipna=True) / count.where(count > 0), count


def summarize(ds: xr.Dataset, *, alpha: float = 0.05) -> xr.Dataset:
    """Summarise an :func:`overlap` result over attributes and unordered language pairs.

    Returns
    -------
    xarray.Dataset
        Dims of ``ds`` minus LANGUAGE, LANGUAGE_OTHER and ATTRIBUTE (typically (step, layer)):
        ``mean_overlap``, ``mean_jaccard``, ``multiple_of_chance`` (mean_overlap / chance),
        ``significant`` (fraction of the finite unordered (pair, attribute) cells with
        ``p_holm < alpha``; NaN where there are none) and ``n_pairs`` (their number); and
        ``mean_ceiling`` (the pairs' mean noise ceiling) where ``ds`` has ``ceiling``; and
        ``n_passed`` / ``n_probed`` (cells that passed the probe quality gate, of those probed,
        over languages and attributes) where ``ds`` has them. attrs those of ``ds`` plus ``alpha``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if "chance" not in ds.attrs:
        raise ValueError("the overlap dataset lacks its 'chance' attribute (made by overlap())")
    over = [name for name in (dims.LANGUAGE, dims.LANGUAGE_OTHER, dims.ATTRIBUTE) if name in ds.dims]
    pairs = _unordered(ds)
    overlaps = ds["overlap"].where(pairs)
    finite = overlaps.notnull()
    mean_overlap, n_pairs = _mean(overlaps, over)
    mean_jaccard, _ = _mean(ds["jaccard"].where(finite), over)
    significant = (finite & (ds["p_holm"] < alpha)).sum(over) / n_pairs.where(n_pairs > 0)
    attrs: dict[str, Any] = {**ds.attrs, "alpha": alpha}
    out = xr.Dataset(
        {
            "mean_overlap": mean_overlap,
            "mean_jaccard": mean_jaccard,
            "multiple_of_chance": mean_overlap / ds.attrs["chance"],
            "significant": significant,
            "n_pairs": n_pairs.astype(np.int64),
        },
        attrs=attrs,
    )
    if "ceiling" in ds:
        mean_ceiling, _ = _mean(ds["ceiling"].where(pairs & finite), over)
        out["mean_ceiling"] = mean_ceiling
    for name in ("n_passed", "n_probed"):
        if name in ds:
            out[name] = ds[name].sum([d for d in over if d in ds[name].dims]).astype(np.int64)
    return out


def pair_mean(ds: xr.Dataset) -> xr.DataArray:
    """Mean ``overlap`` over the finite unordered language pairs, keeping every other dim.

    Dims e.g. (step, layer, attribute); NaN where no pair is finite. Named ``mean_overlap``.
    """
    mean, _ = _mean(ds["overlap"].where(_unordered(ds)), [dims.LANGUAGE, dims.LANGUAGE_OTHER])
    return mean.rename("mean_overlap").assign_attrs(ds.attrs)


def with_language(ds: xr.Dataset, language: str) -> xr.Dataset:
    """The overlap of ``language`` with every other language (the self pair dropped).

    Raises
    ------
    ValueError
        ``language`` is not one of ``ds``'s languages (the message lists them).
    """
    known = [str(name) for name in ds[dims.LANGUAGE].values]
    if language not in known:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(known)}")
    one = ds.sel({dims.LANGUAGE: language})
    if language in [str(name) for name in one[dims.LANGUAGE_OTHER].values]:
        one = one.drop_sel({dims.LANGUAGE_OTHER: language})
    return one
