"""Summarise a store: what ``xalign info`` shows. Reads metadata and small coordinates only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from xalign import dims
from xalign.store.layout import RESULTS_GROUP, LanguageMeta, language_group
from xalign.store.outputs import list_outputs, results_path
from xalign.store.store import Store
from xalign.store.validate import open_root

__all__ = ["LanguageSummary", "StepSummary", "StoreSummary", "summarize"]


@dataclass(frozen=True, kw_only=True, slots=True)
class StepSummary:
    step: int
    revision: str
    fingerprint: str
    duplicate_of: tuple[int, ...]
    """Other steps whose weights have the same fingerprint."""
    heldout_loss: dict[str, float]
    """Language -> next-token loss of the checkpoint on that language's text (NaN: not measured)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LanguageSummary:
    language: str
    treebanks: tuple[str, ...]
    words: int
    sentences: int
    words_per_split: dict[str, int]
    attributes: dict[str, dict[str, int]]
    """Attribute -> value -> number of words carrying it (all splits)."""
    done_fraction: float
    """Fraction of (step, word chunk) cells written."""
    bytes_stored: int
    windowed_sentences: int = 0
    """Sentences longer than the model's window, run in overlapping windows."""
    unencoded_words: int = 0
    """Words that no subword encodes (NaN vectors, left out of probing)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreSummary:
    schema_version: int
    sizes: dict[str, int]
    steps: tuple[StepSummary, ...]
    languages: tuple[LanguageSummary, ...]
    results: dict[str, dict[str, Any]]
    """Results group -> cells, done, skipped and parameters."""
    analyses: dict[str, list[str]]
    """Analysis kind -> names of the stored analyses of that kind."""
    stale: tuple[str, ...] = ()
    """Paths of the outputs made before the store last grew: run them again."""
    provenance: dict[str, Any]
    bytes_stored: int

    @property
    def complete(self) -> bool:
        return all(lang.done_fraction == 1.0 for lang in self.languages)


def summarize(store: Store) -> StoreSummary:
    """What is in ``store``: sizes, steps, languages, labels, completeness and provenance.

    Examples
    --------
    >>> summary = xalign.summarize(store)
    >>> summary.complete, summary.sizes, summary.stale
    """
    root = open_root(store.location)
    steps = _steps(store)
    languages = tuple(_language(store, root, lang) for lang in store.languages)
    sizes = {
        dims.STEP: len(store.steps),
        dims.LAYER: len(store.layers),
        dims.NEURON: store.dataset(store.languages[0]).sizes[dims.NEURON] if store.languages else 0,
        dims.WORD: sum(lang.words for lang in languages),
    }
    results: dict[str, dict[str, Any]] = {}
    results_group = root.get(RESULTS_GROUP)
    if isinstance(results_group, zarr.Group):
        for name, group in sorted(results_group.groups()):
            status = group.get("status")
            values = (
                np.asarray(status[...], dtype=object).ravel()
                if isinstance(status, zarr.Array)
                else np.array([])
            )
            results[name] = {
                "path": results_path(name),
                "cells": int(values.size),
                "done": int((values == "done").sum()),
                "skipped": int(sum(str(v).startswith("skipped") for v in values)),
                "parameters": group.attrs.get("parameters", {}),
            }
    outputs = list_outputs(store.location)
    analyses: dict[str, list[str]] = {}
    for output in outputs:
        if output.kind != "probe":
            analyses.setdefault(output.kind, []).append(output.name)
    return StoreSummary(
        schema_version=store.schema_version,
        sizes=sizes,
        steps=steps,
        languages=languages,
        results=results,
        analyses=analyses,
        stale=tuple(output.path for output in outputs if output.stale),
        provenance=store.provenance,
        bytes_stored=_bytes_stored(root),
    )


def _steps(store: Store) -> tuple[StepSummary, ...]:
    revisions, fingerprints = store.revisions, store.fingerprints
    losses = {
        language: dict(
            zip(store.steps.tolist(), store.dataset(language)[dims.HELDOUT_LOSS].values.tolist(), strict=True)
        )
        for language in store.languages
    }
    return tuple(
        StepSummary(
            step=step,
            revision=str(revisions[step]),
            fingerprint=str(fingerprint),
            duplicate_of=tuple(
                other
                for other, theirs in fingerprints.items()
                if other != step and fingerprint and theirs == fingerprint
            ),
            heldout_loss={language: float(losses[language][step]) for language in store.languages},
        )
        for step, fingerprint in fingerprints.items()
    )


def _language(store: Store, root: zarr.Group, language: str) -> LanguageSummary:
    ds = store.dataset(language)
    splits = Counter(str(s) for s in ds[dims.SPLIT].values.tolist())
    attributes = {
        name: dict(
            sorted(Counter(v for v in map(str, ds[name].values.tolist()) if v != dims.NO_VALUE).items())
        )
        for name in ds.attrs["attributes"]
    }
    sentences = int(ds.sizes.get(dims.SENTENCE, 0)) or len(np.unique(ds[dims.SENTENCE_INDEX].values))
    group = root[language_group(language)]
    meta = LanguageMeta.from_attrs(ds.attrs)
    return LanguageSummary(
        language=language,
        treebanks=tuple(ds.attrs["treebanks"]),
        words=ds.sizes[dims.WORD],
        sentences=sentences,
        words_per_split={split: splits.get(split, 0) for split in dims.SPLITS},
        attributes=attributes,
        done_fraction=float(np.asarray(ds[dims.DONE].values).mean()) if ds[dims.DONE].size else 0.0,
        bytes_stored=_bytes_stored(group) if isinstance(group, zarr.Group) else 0,
        windowed_sentences=meta.windowed_sentences,
        unencoded_words=meta.unencoded_words,
    )


def _bytes_stored(group: zarr.Group) -> int:
    return sum(node.nbytes_stored() for _, node in group.arrays()) + sum(
        _bytes_stored(child) for _, child in group.groups()
    )
