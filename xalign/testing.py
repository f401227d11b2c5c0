"""Synthetic stores with planted signal, and store checks, for tests of xalign and its users.

:func:`write_synthetic_store` writes a schema-valid store in which chosen neurons encode
chosen attribute values in chosen languages (at chosen steps and layers) and every other
neuron is noise, so an analysis can be checked against a known answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.errors import StoreValidationError
from xalign.store.layout import LanguageMeta, language_dataset, n_chunks, root_dataset
from xalign.store.location import StoreLocation, describe_location
from xalign.store.validate import find_violations
from xalign.store.write import write_store

__all__ = [
    "PlantedSignal",
    "SyntheticSpec",
    "assert_stores_equal",
    "assert_valid_store",
    "local_cluster_workers",
    "raise_if_dask_computes",
    "synthetic_word_labels",
    "write_synthetic_store",
]

_UPOS = ("NOUN", "VERB", "ADJ", "DET")


@dataclass(frozen=True, kw_only=True, slots=True)
class PlantedSignal:
    """Neurons that encode one attribute in some languages, steps and layers.

    For a word with value ``v`` (index ``i`` of ``n`` values of the attribute), planted neuron
    ``j`` gets ``strength * (i - (n - 1) / 2) * (-1) ** j`` added to its noise: every value has
    its own mean on every planted neuron. Words without the attribute get nothing added.
    """

    attribute: str
    neurons: tuple[int, ...]
    languages: tuple[str, ...]
    steps: tuple[int, ...] | None = None
    """Steps at which the signal is present; None for all."""
    layers: tuple[int, ...] | None = None
    """Layers at which the signal is present; None for all."""
    strength: float = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SyntheticSpec:
    """The shape of a synthetic store; the defaults make a small, fast one."""

    languages: tuple[str, ...] = ("en", "fr", "es")
    steps: tuple[int, ...] = (0, 1000, 2000)
    layers: tuple[int, ...] = (0, 1, 2)
    neurons: int = 32
    words: int = 600
    """Words per language."""
    attributes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"Number": ("Sing", "Plur"), "Gender": ("Masc", "Fem", "Neut")}
    )
    coverage: float = 0.8
    """Probability that a word carries each attribute."""
    signals: tuple[PlantedSignal, ...] = ()
    chunk_words: int = 256
    dtype: str = "float16"
    words_per_sentence: int = 10
    parallel: float = 0.0
    """Weight of a vector per sentence shared by every language (sentence ``s<i>`` is one
    sentence translated): above 0, parallel sentences are closer than mismatched ones."""
    seed: int = 0


def write_synthetic_store(location: StoreLocation, spec: SyntheticSpec, *, overwrite: bool = False) -> None:
    """Write a complete, schema-valid store with the planted signal of ``spec``."""
    rng = np.random.default_rng(spec.seed)
    root = root_dataset(
        steps=spec.steps,
        revisions=[f"synthetic_step{s}" for s in spec.steps],
        fingerprints=[f"synthetic-{spec.seed}-{s}" for s in spec.steps],
        layers=spec.layers,
        provenance={
            "model_id": "xalign/synthetic",
            "tokenizer": "none",
            "pooling": "synthetic",
            "dtype": spec.dtype,
            "xalign_version": _version(),
            "config_hash": f"synthetic-seed-{spec.seed}",
            "data_files": {},
        },
    )
    groups = {language: _language(spec, language, rng) for language in spec.languages}
    write_store(location, root, groups, overwrite=overwrite)


def _language(spec: SyntheticSpec, language: str, rng: np.random.Generator) -> xr.Dataset:
    n = spec.words
    words = synthetic_word_labels(spec, language, rng)
    shape = (len(spec.steps), len(spec.layers))
    hidden = rng.standard_normal((*shape, n, spec.neurons)).astype(np.float32)
    if spec.parallel:
        # Its own generator, shared by the languages, so the other draws stay as they were.
        shared = np.random.default_rng([spec.seed, 1]).standard_normal((n, spec.neurons))
        by_sentence = shared[np.asarray(words[dims.SENTENCE_INDEX])]
        hidden += (spec.parallel * by_sentence).astype(np.float32)
    for signal in spec.signals:
        if language in signal.languages:
            _plant(hidden, signal, spec, np.asarray(words[signal.attribute], dtype=object))
    n_sentences = int(words[dims.SENTENCE_INDEX][-1]) + 1 if n else 0
    sentence_mean = np.stack(
        [hidden[:, :, words[dims.SENTENCE_INDEX] == s].mean(axis=2) for s in range(n_sentences)], axis=2
    )
    sentence_last = hidden[:, :, np.flatnonzero(np.diff(words[dims.SENTENCE_INDEX], append=n_sentences))]
    meta = LanguageMeta(
        language=language,
        treebanks=(f"{language}_synthetic",),
        attributes=tuple(spec.attributes),
        label_scheme="ud",
        split_mode="lemma",
        chunk_words=spec.chunk_words,
        chunk_sentences=spec.chunk_words,
    )
    return language_dataset(
        meta=meta,
        steps=spec.steps,
        layers=spec.layers,
        words=words,
        sentences={
            dims.SENTENCE_ID: [f"s{i}" for i in range(n_sentences)],
            dims.TEXT: [f"synthetic sentence {i}" for i in range(n_sentences)],
            dims.SENTENCE_TOKENS: np.bincount(words[dims.SENTENCE_INDEX], minlength=n_sentences),
        },
        data={
            dims.HIDDEN: hidden.astype(spec.dtype),
            dims.DONE: np.ones((*shape[:1], n_chunks(n, spec.chunk_words)), dtype=bool),
            dims.SENTENCE_MEAN: sentence_mean.astype(spec.dtype),
            dims.SENTENCE_LAST: sentence_last.astype(spec.dtype),
            dims.SENTENCE_LOSS: rng.uniform(3.0, 6.0, (len(spec.steps), n_sentences)).astype(np.float32),
            dims.SENTENCE_DONE: np.ones(
                (len(spec.steps), n_chunks(n_sentences, spec.chunk_words)), dtype=bool
            ),
        },
        heldout_loss=np.linspace(9.0, 4.0, len(spec.steps)),
    )


def synthetic_word_labels(spec: SyntheticSpec, language: str, rng: np.random.Generator) -> dict[str, Any]:
    """Per-word labels of ``language``: lemma-disjoint splits (80/10/10), sentences of
    ``spec.words_per_sentence`` words, and ``spec.attributes`` drawn at random on
    ``spec.coverage`` of the words (the rest carry ``NO_VALUE``)."""
    n = spec.words
    n_lemmas = max(3, n // 3)
    lemma_ids = rng.integers(0, n_lemmas, size=n)
    # Lemma-disjoint splits, as the reference re-splits treebanks.
    lemma_split = rng.choice(np.asarray(dims.SPLITS, dtype=object), size=n_lemmas, p=[0.8, 0.1, 0.1])
    sentence_index = np.arange(n) // spec.words_per_sentence
    labels: dict[str, Any] = {
        dims.LANGUAGE: [language] * n,
        dims.TREEBANK: [f"{language}_synthetic"] * n,
        dims.SPLIT: lemma_split[lemma_ids],
        dims.SENT_ID: [f"s{i}" for i in sentence_index],
        dims.SENTENCE_INDEX: sentence_index,
        dims.FORM: [f"{language}{i}" for i in lemma_ids],
        dims.LEMMA: [f"{language}{i}" for i in lemma_ids],
        dims.UPOS: rng.choice(np.asarray(_UPOS, dtype=object), size=n),
        dims.SUBWORDS: np.ones(n, dtype=np.int64),
    }
    for attribute, values in spec.attributes.items():
        drawn = rng.choice(np.asarray(values, dtype=object), size=n)
        carried = rng.random(n) < spec.coverage
        labels[attribute] = np.where(carried, drawn, dims.NO_VALUE)
    return labels


def local_cluster_workers() -> list[Any]:
    """The worker processes of the ``LocalCluster``s this process started (needs psutil).

    Workers are spawned by multiprocessing; tests and benchmarks kill one to check that a
    grid survives the loss of a worker.
    """
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _plant(hidden: np.ndarray, signal: PlantedSignal, spec: SyntheticSpec, labels: np.ndarray) -> None:
    values = spec.attributes[signal.attribute]
    step_pos = [i for i, s in enumerate(spec.steps) if signal.steps is None or s in signal.steps]
    layer_pos = [i for i, layer in enumerate(spec.layers) if signal.layers is None or layer in signal.layers]
    signs = np.where(np.arange(len(signal.neurons)) % 2 == 0, 1.0, -1.0)
    for index, value in enumerate(values):
        words = np.flatnonzero(labels == value)
        shift = signal.strength * (index - (len(values) - 1) / 2) * signs
        for s in step_pos:
            for layer in layer_pos:
                hidden[s, layer, words[:, None], np.asarray(signal.neurons)[None, :]] += shift


def assert_valid_store(location: StoreLocation) -> None:
    """Raise :class:`StoreValidationError` listing every violation if the store is not valid."""
    violations = find_violations(location)
    if violations:
        raise StoreValidationError(describe_location(location), violations)


def assert_stores_equal(
    a: StoreLocation, b: StoreLocation, *, ignore_attrs: tuple[str, ...] = (), ulps: int = 0
) -> None:
    """Assert two stores hold the same arrays with the same values (NaN equal to NaN) and attrs;
    with ``ulps``, floating-point values may differ by that many units in the last place."""
    import zarr

    left = dict(zarr.open_group(a, mode="r", use_consolidated=False).members(max_depth=None))
    right = dict(zarr.open_group(b, mode="r", use_consolidated=False).members(max_depth=None))
    assert sorted(left) == sorted(right), f"nodes differ: {sorted(set(left) ^ set(right))}"
    for path, node in left.items():
        other = right[path]
        mine_attrs = {k: v for k, v in node.attrs.asdict().items() if k not in ignore_attrs}
        their_attrs = {k: v for k, v in other.attrs.asdict().items() if k not in ignore_attrs}
        assert mine_attrs == their_attrs, f"{path}: attrs differ"
        if isinstance(node, zarr.Array):
            assert isinstance(other, zarr.Array)
            x, y = np.asarray(node[...]), np.asarray(other[...])
            assert x.shape == y.shape, f"{path}: shapes {x.shape} != {y.shape}"
            if x.dtype.kind == "f" and ulps:
                apart = ulp_distance(x, y)
                assert apart.max(initial=0) <= ulps, f"{path}: values differ by up to {apart.max()} ulps"
                continue
            equal_nan = x.dtype.kind == "f"
            assert np.array_equal(x, y, equal_nan=equal_nan), f"{path}: values differ"


def ulp_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many representable values of their float dtype lie between ``x`` and ``y`` (0 where
    equal, NaN included): the bits as ordered integers, so that -0.0 and 0.0 are 0 apart."""
    widths: dict[int, type[np.signedinteger[Any]]] = {2: np.int16, 4: np.int32, 8: np.int64}
    width = widths[x.dtype.itemsize]

    def ordered(values: np.ndarray) -> np.ndarray:
        bits = values.view(width).astype(np.int64)
        return np.where(bits < 0, np.iinfo(width).min - bits, bits)

    both_nan = np.isnan(x) & np.isnan(y)
    return np.where(both_nan, 0, np.abs(ordered(x) - ordered(y)))


@contextmanager
def raise_if_dask_computes() -> Iterator[None]:
    """Within this block, any Dask computation raises: turns "stays lazy" into an assertion."""
    import dask

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a Dask computation ran where everything should stay lazy")

    with dask.config.set(scheduler=refuse):
        yield


def _version() -> str:
    from xalign import __version__

    return __version__
