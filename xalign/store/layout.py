"""Build the xarray objects of a store's groups, and their Zarr encodings.

Every writer (the extractor, :mod:`xalign.testing`) builds groups here, so the names,
dims and attrs of the schema are spelled in one place. Encodings (chunks, codecs) are kept
apart from meaning (attrs), as xarray does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec, Crc32cCodec

from xalign import dims
from xalign.store.schema import latest_version, load_schema

__all__ = [
    "LANGUAGES_GROUP",
    "PROVENANCE_ATTR",
    "SCHEMA_ATTR",
    "WORD_LABELS",
    "hidden_encoding",
    "language_dataset",
    "language_group",
    "root_dataset",
    "schema_attr",
]

SCHEMA_ATTR = "xalign_schema"
PROVENANCE_ATTR = "provenance"
LANGUAGES_GROUP = "languages"
RESULTS_GROUP = "results"

WORD_LABELS = (
    dims.LANGUAGE,
    dims.TREEBANK,
    dims.SPLIT,
    dims.SENT_ID,
    dims.SENTENCE_INDEX,
    dims.FORM,
    dims.LEMMA,
    dims.UPOS,
)
"""The fixed per-word label coordinates; attribute labels come after them."""

DEFAULT_CHUNK_WORDS = 2048


def language_group(language: str) -> str:
    """Path of the group that holds ``language``."""
    return f"{LANGUAGES_GROUP}/{language}"


def schema_attr(version: int | None = None) -> dict[str, Any]:
    """The root attr that says which schema a store follows."""
    schema = load_schema(version)
    return {"name": schema.name, "version": latest_version() if version is None else version}


def _strings(values: Sequence[str] | np.ndarray) -> np.ndarray:
    # Object arrays become Zarr v3 variable-length strings, which other readers understand.
    return np.asarray(values, dtype=object)


def root_dataset(
    *,
    steps: Sequence[int],
    revisions: Sequence[str],
    commits: Sequence[str],
    fingerprints: Sequence[str],
    layers: Sequence[int],
    provenance: Mapping[str, Any],
) -> xr.Dataset:
    """The root group: per-step coordinates, layers and provenance."""
    return xr.Dataset(
        coords={
            dims.STEP: (dims.STEP, np.asarray(steps, dtype=np.int64)),
            dims.REVISION: (dims.STEP, _strings(revisions)),
            "commit": (dims.STEP, _strings(commits)),
            dims.FINGERPRINT: (dims.STEP, _strings(fingerprints)),
            dims.LAYER: (dims.LAYER, np.asarray(layers, dtype=np.int64)),
        },
        attrs={SCHEMA_ATTR: schema_attr(), PROVENANCE_ATTR: dict(provenance)},
    )


def language_dataset(
    *,
    language: str,
    labels: Mapping[str, Sequence[Any] | np.ndarray],
    attributes: Sequence[str],
    treebanks: Sequence[str],
    steps: Sequence[int],
    layers: Sequence[int],
    hidden: Any,
    done: Any,
    heldout_loss: Sequence[float] | np.ndarray,
    chunk_words: int,
    label_scheme: str,
    split_mode: str,
) -> xr.Dataset:
    """One language group.

    Parameters
    ----------
    labels
        One sequence per word for every name in :data:`WORD_LABELS` and in ``attributes``.
    hidden
        Array-like of shape (step, layer, word, neuron): numpy, or a lazy dask array for a
        template that writers fill region by region.
    done
        Boolean array-like of shape (step, word_chunk).
    """
    coords: dict[str, Any] = {
        dims.STEP: (dims.STEP, np.asarray(steps, dtype=np.int64)),
        dims.LAYER: (dims.LAYER, np.asarray(layers, dtype=np.int64)),
        dims.HELDOUT_LOSS: (dims.STEP, np.asarray(heldout_loss, dtype=np.float32)),
    }
    for name in (*WORD_LABELS, *attributes):
        values = labels[name]
        if name == dims.SENTENCE_INDEX:
            coords[name] = (dims.WORD, np.asarray(values, dtype=np.int64))
        else:
            coords[name] = (dims.WORD, _strings(values))
    return xr.Dataset(
        {
            dims.HIDDEN: ((dims.STEP, dims.LAYER, dims.WORD, dims.NEURON), hidden),
            dims.DONE: ((dims.STEP, dims.WORD_CHUNK), done),
        },
        coords=coords,
        attrs={
            "language": language,
            "treebanks": list(treebanks),
            "attributes": list(attributes),
            "label_scheme": label_scheme,
            "split_mode": split_mode,
            "chunk_words": int(chunk_words),
        },
    )


def hidden_encoding(dtype: np.dtype[Any], neurons: int, chunk_words: int) -> dict[str, Any]:
    """Zarr encoding of an activation array: one chunk per (step, layer, word chunk).

    Blosc-zstd with byte shuffle (Blosc under Zarr v3 needs the typesize said), then a
    CRC32C checksum so that a corrupted chunk fails loudly on read.
    """
    return {
        "chunks": (1, 1, chunk_words, neurons),
        "compressors": (
            BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=np.dtype(dtype).itemsize),
            Crc32cCodec(),
        ),
    }
