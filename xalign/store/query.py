"""Select words, steps and layers from a language Dataset by label, lazily.

Label coordinates are small (one string per word) and are read to build a word mask; the
activations stay lazy Dask arrays until the caller computes them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import xarray as xr

from xalign import dims

__all__ = ["LabelFilter", "select"]

LabelFilter = Mapping[str, str | Collection[str]]
"""Label coordinate name -> the value, or any of the values, to keep."""


def select(
    ds: xr.Dataset,
    *,
    step: int | Collection[int] | None = None,
    layer: int | Collection[int] | None = None,
    split: str | Collection[str] | None = None,
    where: LabelFilter | None = None,
) -> xr.Dataset:
    """The part of a language Dataset at the given steps and layers, for matching words.

    Parameters
    ----------
    ds
        A language group, e.g. ``store.dataset("en")``.
    step, layer
        Step numbers and layer indices (coordinate values, not positions). A scalar drops
        the dimension, as :meth:`xarray.Dataset.sel` does.
    split
        ``train``, ``dev``, ``test``, or several.
    where
        Other label coordinates, e.g. ``{"Number": "Plur", "upos": ["NOUN", "PROPN"]}``.

    Raises
    ------
    KeyError
        If a label name is not a coordinate of ``ds``.

    Examples
    --------
    >>> plural_nouns = xalign.select(store.dataset("fr"), step=600, layer=2, split="train",
    ...                              where={"Number": "Plur", "upos": "NOUN"})
    >>> plural_nouns.hidden.mean("word").compute()
    """
    indexers: dict[str, object] = {}
    if step is not None:
        indexers[dims.STEP] = _as_indexer(step)
    if layer is not None:
        indexers[dims.LAYER] = _as_indexer(layer)
    out = ds.sel(indexers) if indexers else ds
    labels: dict[str, str | Collection[str]] = dict(where or {})
    if split is not None:
        labels[dims.SPLIT] = split
    if labels:
        out = out.isel({dims.WORD: word_mask(out, labels)})
    return out


def word_mask(ds: xr.Dataset, labels: LabelFilter) -> np.ndarray:
    """Boolean mask over ``word`` of the words whose labels match every filter."""
    mask = np.ones(ds.sizes[dims.WORD], dtype=bool)
    for name, wanted in labels.items():
        if name not in ds.coords or ds[name].dims != (dims.WORD,):
            known = sorted(str(c) for c in ds.coords if ds[c].dims == (dims.WORD,))
            raise KeyError(f"{name!r} is not a per-word label; known labels: {', '.join(known)}")
        values = np.asarray(ds[name].values, dtype=object)
        allowed = [wanted] if isinstance(wanted, str) else list(wanted)
        mask &= np.isin(values, np.asarray(allowed, dtype=object))
    return mask


def _as_indexer(value: int | Collection[int]) -> int | list[int]:
    return value if isinstance(value, int | np.integer) else list(value)
