"""The peers' patterns that xalign is measured against, written here from their descriptions.

Nothing here is xalign's code path; each function does the same work the way a peer does it,
on the same model, words and store, so that the suite can time both side by side:

- :func:`reference_extract`: the reference study's extraction (Wang, Minervini & Ponti 2024,
  built on the intrinsic-probing code of Stańczak et al.): unbatched, one run per kept layer
  (so one forward pass per sentence per layer), words mean-pooled over their subwords, and
  float32 vectors pickled one file per (treebank, split, layer, checkpoint), each word a dict
  of its form, vector and attributes;
- :func:`neurox_extract`: a NeuroX-like activation file: one forward pass per sentence with
  every hidden state, words averaged over their subwords, and one HDF5 float32 dataset per
  sentence of shape (layers, words, neurons), uncompressed, plus a ``sentence_to_index`` JSON
  dataset;
- :func:`naive_probe_grid`: the probing grid as the reference runs it: cell after cell, one
  slab read per cell, each greedy step re-evaluating the fitted probe once per candidate;
- :func:`load_store_arrays` and :func:`in_memory_probe_grid`: the same grid as xalign's,
  vectorised, but on numpy arrays loaded whole into memory first (the in-memory way).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.cells import kept_values, split_cells
from xalign.analysis.probing import ProbeParams, grid_attributes
from xalign.analysis.selection import select_neurons, select_neurons_naive
from xalign.extract.encode import EncodedCorpus
from xalign.store.store import open_store
from xalign.treebank.corpus import Corpus

__all__ = [
    "LoadedStore",
    "in_memory_probe_grid",
    "load_store_arrays",
    "naive_probe_grid",
    "neurox_extract",
    "reference_extract",
]


def _pooled_words(hidden: Any, encoded: EncodedCorpus, sentence: int) -> list[Any]:
    """Mean of each word's subword vectors in one sentence's ``(positions, neurons)`` states."""
    import torch

    vectors = []
    for positions in encoded.word_positions_of(sentence):
        if len(positions):
            vectors.append(hidden[torch.from_numpy(positions)].mean(dim=0))
        else:  # no subword encodes it
            vectors.append(torch.full((hidden.shape[-1],), float("nan")))
    return vectors


def reference_extract(
    model: Any,
    corpus: Corpus,
    encoded: EncodedCorpus,
    layers: Sequence[int],
    out: Path,
    *,
    checkpoint: str,
) -> int:
    """The reference's extraction of one checkpoint over one treebank; returns the bytes written.

    For each kept layer (one run each, as the reference ran one layer per run), every
    sentence goes through the base model alone (no language-model head, no cache), the
    layer's states are mean-pooled per word, and each split's words are pickled as a list of
    ``{"word", "embedding" (float32), "attributes"}`` dicts into
    ``<treebank>-<split>-layer<L>-<checkpoint>.pkl``.
    """
    import torch

    out.mkdir(parents=True, exist_ok=True)
    treebank = corpus.treebanks[0]
    forms = [word.form for sentence in corpus.sentences for word in sentence.words]
    written = 0
    with torch.inference_mode():
        for layer in layers:
            per_split: dict[str, list[dict[str, Any]]] = {}
            for s in range(encoded.n_sentences):
                ids = torch.from_numpy(encoded.sentence_ids(s)[None, :].astype(np.int64))
                states = model.base_model(input_ids=ids, output_hidden_states=True, use_cache=False)
                vectors = _pooled_words(states.hidden_states[layer][0], encoded, s)
                for w, vector in zip(
                    range(encoded.word_ptr[s], encoded.word_ptr[s + 1]), vectors, strict=True
                ):
                    per_split.setdefault(corpus.splits[w], []).append(
                        {
                            "word": forms[w],
                            "embedding": vector.numpy().astype(np.float32),
                            "attributes": dict(corpus.labels[w]),
                        }
                    )
            for split, words in per_split.items():
                path = out / f"{treebank}-{split}-layer{layer}-{checkpoint}.pkl"
                with path.open("wb") as file:
                    pickle.dump(words, file, protocol=pickle.HIGHEST_PROTOCOL)
                written += path.stat().st_size
    return written


def neurox_extract(
    model: Any, corpus: Corpus, encoded: EncodedCorpus, layers: Sequence[int], path: Path
) -> int:
    """A NeuroX-like HDF5 activation file of one checkpoint; returns its size in bytes.

    One forward pass per sentence with every hidden state; the kept layers' word vectors
    (mean over subwords) go to dataset ``str(sentence)`` of shape (layers, words, neurons),
    float32, uncompressed; ``sentence_to_index`` maps each sentence's text to its dataset.
    """
    import h5py
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    index: dict[str, str] = {}
    with h5py.File(path, "w") as file, torch.inference_mode():
        for s in range(encoded.n_sentences):
            ids = torch.from_numpy(encoded.sentence_ids(s)[None, :].astype(np.int64))
            states = model.base_model(input_ids=ids, output_hidden_states=True, use_cache=False)
            per_layer = [
                torch.stack(_pooled_words(states.hidden_states[layer][0], encoded, s)) for layer in layers
            ]
            activations = torch.stack(per_layer).numpy().astype(np.float32)
            file.create_dataset(str(s), activations.shape, dtype="float32", data=activations)
            index[corpus.sentences[s].text] = str(s)
        file.create_dataset("sentence_to_index", data=json.dumps(index))
    return path.stat().st_size


def _probe_cells(
    hidden: np.ndarray, labels: xr.Dataset, attributes: Sequence[str], params: ProbeParams, *, naive: bool
) -> int:
    """Probe every kept attribute on one loaded (word, neuron) slab; returns the cells done."""
    kept = kept_values(
        labels,
        [a for a in attributes if a in labels],
        min_count=params.min_count,
        min_values=params.min_values,
    )
    select = select_neurons_naive if naive else select_neurons
    done = 0
    for cell in split_cells(hidden, labels, kept).values():
        probe = params.make_probe().fit(*cell.train, n_classes=len(cell.values))
        select(probe, cell.dev, cell.test, k=params.k, criterion=params.criterion, n_values=len(cell.values))
        done += 1
    return done


def naive_probe_grid(location: str, params: ProbeParams) -> int:
    """Every cell of the store, one after another, with the per-candidate loop; returns cells done.

    Each cell reads its own slab (the reference reads its pickles per run) and selects
    neurons with :func:`~xalign.analysis.selection.select_neurons_naive`.
    """
    store = open_store(location)
    attributes = grid_attributes(store, store.languages, params)
    done = 0
    for language in store.languages:
        labels = store.labels(language)
        for step in store.steps.tolist():
            for layer in store.layers.tolist():
                for attribute in attributes:
                    hidden = store.activations(language, step=step, layer=layer).values
                    done += _probe_cells(hidden, labels, [attribute], params, naive=True)
    return done


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedStore:
    """Every language's activations as one in-memory numpy array, with its labels."""

    steps: list[int]
    layers: list[int]
    hidden: dict[str, np.ndarray]
    """language -> (step, layer, word, neuron) float32, in memory."""
    labels: dict[str, xr.Dataset]
    attributes: tuple[str, ...]


def load_store_arrays(location: str, params: ProbeParams) -> LoadedStore:
    """Read the whole store into numpy (float32), as an in-memory analysis starts."""
    store = open_store(location)
    return LoadedStore(
        steps=store.steps.tolist(),
        layers=store.layers.tolist(),
        hidden={
            language: np.asarray(store.dataset(language)[dims.HIDDEN].values, dtype=np.float32)
            for language in store.languages
        },
        labels={language: store.labels(language) for language in store.languages},
        attributes=grid_attributes(store, store.languages, params),
    )


def in_memory_probe_grid(loaded: LoadedStore, params: ProbeParams) -> int:
    """xalign's per-slab work (vectorised selection) on the loaded arrays, in one process."""
    done = 0
    for language, hidden in loaded.hidden.items():
        for s in range(len(loaded.steps)):
            for l_ in range(len(loaded.layers)):
                done += _probe_cells(
                    hidden[s, l_], loaded.labels[language], loaded.attributes, params, naive=False
                )
    return done
