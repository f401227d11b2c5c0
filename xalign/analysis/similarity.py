"""Parallel-sentence similarity: how close a sentence and its translation are inside the model.

Parallel treebanks (PUD) give the same sentence in every language under the same sentence id.
For each language X and (step, layer), this is the mean cosine similarity between the vector of
a reference-language sentence and the vector of its translation in X, from the per-sentence
vectors the extractor stores (mean over subwords, and last subword). Cosines of hidden states
are high for any two inputs (the space is anisotropic), so each figure comes with its baseline:
the same mean over mismatched pairs (sentence i against the translation of sentence i + 1).
Alignment shows as the gap between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from xalign import dims
from xalign.errors import XalignError
from xalign.store.store import Store

__all__ = ["POOLINGS", "SimilarityError", "cosine", "parallel_similarity"]

POOLINGS = {"mean": dims.SENTENCE_MEAN, "last": dims.SENTENCE_LAST}
"""Sentence vector by pooling name: the result has ``<pooling>_cosine`` and ``<pooling>_baseline``."""


class SimilarityError(XalignError, ValueError):
    """Similarity that cannot be measured as asked (no such language, no shared sentences)."""


def cosine(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Cosine similarity of ``a`` and ``b`` along ``neuron`` (lazy if they are)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = (a * b).sum(dims.NEURON)
    norms = ((a * a).sum(dims.NEURON) * (b * b).sum(dims.NEURON)) ** 0.5
    similarity: xr.DataArray = dot / norms.where(norms > 0)
    return similarity


def parallel_similarity(
    store: Store, *, reference: str = "en", languages: Sequence[str] | None = None
) -> xr.Dataset:
    """Mean cosine similarity of parallel sentences between ``reference`` and each language.

    Returns
    -------
    xr.Dataset
        Lazy, dims (step, layer, language): ``mean_cosine``, ``last_cosine``, ``mean_baseline``,
        ``last_baseline``; ``n_sentences`` (language) counts the sentence ids shared with the
        reference. The reference's own row is NaN. Sentences whose vectors are not extracted
        yet (NaN) are left out of the means.

    Raises
    ------
    SimilarityError
        If ``reference`` is not in the store, or a language shares fewer than two sentence ids
        with it.
    """
    if reference not in store.languages:
        raise SimilarityError(
            f"reference language {reference!r} is not in the store (it has {', '.join(store.languages)})"
        )
    languages = list(store.languages if languages is None else languages)
    ref = store.dataset(reference)
    ref_ids = {str(s): i for i, s in enumerate(ref[dims.SENTENCE_ID].values)}
    rows: list[xr.Dataset | None] = []
    counts: list[int] = []
    for language in languages:
        if language == reference:
            rows.append(None)
            counts.append(0)
            continue
        theirs = store.dataset(language)
        mine_pos, their_pos = _shared(ref_ids, theirs[dims.SENTENCE_ID].values)
        if len(mine_pos) < 2:
            raise SimilarityError(
                f"{language} shares {len(mine_pos)} sentence id(s) with {reference}; parallel similarity "
                "needs parallel treebanks (the same sentence ids in both, as in PUD)"
            )
        rows.append(_language_similarity(ref, theirs, mine_pos, their_pos))
        counts.append(len(mine_pos))
    template = next((row for row in rows if row is not None), None)
    if template is None:
        raise SimilarityError(f"no language besides the reference {reference!r} to compare with")
    filled = [row if row is not None else xr.full_like(template, np.nan) for row in rows]
    result = xr.concat(filled, dim=dims.LANGUAGE, coords="minimal", compat="override", join="override")
    result = result.assign_coords({dims.LANGUAGE: np.asarray(languages, dtype=object)})
    result["n_sentences"] = (dims.LANGUAGE, np.asarray(counts, dtype=np.int64))
    result = result.transpose(dims.STEP, dims.LAYER, dims.LANGUAGE)
    result.attrs = {"reference": reference}
    return result


def _shared(ref_ids: dict[str, int], their_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the sentence ids both languages have, in the reference's order."""
    theirs = {str(s): i for i, s in enumerate(their_ids)}
    common = [(i, theirs[s]) for s, i in ref_ids.items() if s in theirs]
    common.sort()
    return (
        np.asarray([i for i, _ in common], dtype=np.int64),
        np.asarray([j for _, j in common], dtype=np.int64),
    )


def _language_similarity(
    ref: xr.Dataset, theirs: xr.Dataset, mine_pos: np.ndarray, their_pos: np.ndarray
) -> xr.Dataset:
    out = {}
    shifted = np.roll(their_pos, -1)
    for pooling, variable in POOLINGS.items():
        a = _vectors(ref[variable], mine_pos)
        matched = cosine(a, _vectors(theirs[variable], their_pos))
        mismatched = cosine(a, _vectors(theirs[variable], shifted))
        out[f"{pooling}_cosine"] = matched.mean(dims.SENTENCE, skipna=True)
        out[f"{pooling}_baseline"] = mismatched.mean(dims.SENTENCE, skipna=True)
    return xr.Dataset(out)


def _vectors(variable: xr.DataArray, positions: np.ndarray) -> xr.DataArray:
    """The sentence vectors at ``positions``, renumbered 0..n-1 so two languages line up."""
    picked = variable.isel({dims.SENTENCE: positions}).reset_coords(drop=True)
    return picked.drop_vars([c for c in picked.coords if c != dims.STEP and c != dims.LAYER]).assign_coords(
        {dims.SENTENCE: np.arange(len(positions))}
    )
