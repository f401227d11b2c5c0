"""Views of several languages at once: words concatenated, and parallel sentences side by side.

A store keeps one group per language, each with its own words and sentences. Two views join
them without loading anything:

- :func:`words`: the word-level variables of several languages concatenated along ``word``,
  with ``language`` the per-word coordinate it already is (attributes that a language lacks
  read as ``""``, "not carried", as in the store).
- :func:`parallel`: for parallel treebanks (the same ``sent_id`` in several languages, like
  PUD), one sentence vector per (language, sentence), a DataArray with dims
  ``(language, step, layer, sentence, neuron)`` whose ``sentence`` coordinate is the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import xarray as xr

from xalign import dims

__all__ = ["LanguageGroups", "SentenceVector", "parallel", "words"]

SentenceVector = Literal["mean", "last"]


class LanguageGroups(Protocol):
    """What the views need of a store (:class:`xalign.Store` has it)."""

    @property
    def languages(self) -> tuple[str, ...]: ...

    def dataset(self, language: str) -> xr.Dataset: ...

    def attributes(self, language: str) -> tuple[str, ...]: ...


def words(store: LanguageGroups, languages: Sequence[str] | None = None) -> xr.Dataset:
    """The word-level variables (``hidden``) and labels of ``languages`` along one ``word`` dim.

    Examples
    --------
    >>> both = store.words(["fr", "es"])
    >>> both.hidden.sel(step=1000, layer=12).groupby("language").mean("word")
    """
    chosen = list(store.languages if languages is None else languages)
    if not chosen:
        raise ValueError("no languages to concatenate")
    parts = []
    for language in chosen:
        ds = store.dataset(language)
        parts.append(ds[[name for name, var in ds.data_vars.items() if dims.WORD in var.dims]])
    labels = list(dict.fromkeys(a for language in chosen for a in store.attributes(language)))
    filled = [
        part.assign_coords(
            {
                attribute: (dims.WORD, np.full(part.sizes[dims.WORD], dims.NO_VALUE, dtype=object))
                for attribute in labels
                if attribute not in part.coords
            }
        )
        for part in parts
    ]
    joined = xr.concat(
        filled,
        dim=dims.WORD,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="drop_conflicts",
    )
    joined.attrs["languages"] = chosen
    joined.attrs["attributes"] = labels
    return joined


def parallel(
    store: LanguageGroups, vector: SentenceVector = "mean", languages: Sequence[str] | None = None
) -> xr.DataArray:
    """Sentence vectors of ``languages`` for the sentence ids they all share, side by side.

    ``vector`` is ``mean`` (the mean of a sentence's subwords) or ``last`` (its last subword).
    Sentences are in the order of the first language; ids found in only some languages are
    left out.

    Raises
    ------
    ValueError
        If the languages share no sentence id (the treebanks are not parallel).

    Examples
    --------
    >>> pud = store.parallel("mean", ["en", "fr", "es"])
    >>> pud.sel(step=1000, layer=12)  # (language, sentence, neuron), lazy
    """
    name = {"mean": dims.SENTENCE_MEAN, "last": dims.SENTENCE_LAST}.get(vector)
    if name is None:
        raise ValueError(f"vector must be 'mean' or 'last', got {vector!r}")
    chosen = list(store.languages if languages is None else languages)
    datasets = {language: store.dataset(language) for language in chosen}
    ids = {language: [str(i) for i in ds[dims.SENTENCE_ID].values] for language, ds in datasets.items()}
    shared = set.intersection(*(set(v) for v in ids.values())) if ids else set()
    order = [i for i in dict.fromkeys(ids[chosen[0]]) if i in shared] if chosen else []
    if not order:
        raise ValueError(
            f"{', '.join(chosen) or 'no languages'}: no sentence id is shared; not parallel treebanks"
        )
    parts = []
    for language, ds in datasets.items():
        first = {sentence_id: i for i, sentence_id in reversed(list(enumerate(ids[language])))}
        part = ds[name].isel({dims.SENTENCE: [first[i] for i in order]})
        part = part.drop_vars([c for c in part.coords if dims.SENTENCE in part[c].dims])
        parts.append(part.assign_coords({dims.SENTENCE: np.asarray(order, dtype=str)}))
    joined = xr.concat(
        parts,
        dim=xr.DataArray(np.asarray(chosen, dtype=str), dims=(dims.LANGUAGE,), name=dims.LANGUAGE),
        coords="minimal",
        compat="override",
        join="exact",
        combine_attrs="drop_conflicts",
    )
    return joined.transpose(dims.LANGUAGE, dims.STEP, dims.LAYER, dims.SENTENCE, dims.NEURON)
