"""Build the xarray objects of a store's groups, and their Zarr encodings.

Every writer (the extractor, :mod:`xalign.testing`) builds groups here, so the names and
attrs of the schema are spelled in one place, and every array takes its dimension names
from the schema document itself. Encodings (chunks, codecs) are kept apart from meaning
(attrs), as xarray does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec, Crc32cCodec

from xalign import dims
from xalign.store.schema import latest_version, load_schema

__all__ = [
    "ACTIVATIONS",
    "ANALYSES_GROUP",
    "CHUNK_ATTRS",
    "GENERATION_ATTR",
    "LANGUAGES_GROUP",
    "PER_STEP",
    "PROVENANCE_ATTR",
    "RESULTS_GROUP",
    "SCHEMA_ATTR",
    "WORD_LABELS",
    "LanguageMeta",
    "array_dims",
    "empty_language_data",
    "encodings",
    "language_dataset",
    "language_group",
    "root_dataset",
    "schema_attr",
]

SCHEMA_ATTR = "xalign_schema"
PROVENANCE_ATTR = "provenance"
LANGUAGES_GROUP = "languages"
RESULTS_GROUP = "results"
ANALYSES_GROUP = "analyses"
GENERATION_ATTR = "generation"
"""Root attr: how many times the store grew; each output records the value it was made at."""

WORD_LABELS = (
    dims.LANGUAGE,
    dims.TREEBANK,
    dims.SPLIT,
    dims.SENT_ID,
    dims.SENTENCE_INDEX,
    dims.FORM,
    dims.LEMMA,
    dims.UPOS,
    dims.SUBWORDS,
)
"""The fixed per-word coordinates; attribute labels come after them."""
SENTENCE_LABELS = (dims.SENTENCE_ID, dims.TEXT, dims.SENTENCE_TOKENS)

ACTIVATIONS = {
    dims.HIDDEN: (dims.WORD, dims.DONE),
    dims.SENTENCE_MEAN: (dims.SENTENCE, dims.SENTENCE_DONE),
    dims.SENTENCE_LAST: (dims.SENTENCE, dims.SENTENCE_DONE),
    dims.SUBWORD_HIDDEN: (dims.SUBWORD, dims.SUBWORD_DONE),
}
"""Activation array -> (the dim it runs along, the array of its done flags)."""
DONE_FLAGS = {dims.DONE: dims.WORD, dims.SENTENCE_DONE: dims.SENTENCE, dims.SUBWORD_DONE: dims.SUBWORD}
"""Done-flag array -> the dim whose chunks it tracks."""
CHUNK_ATTRS = {dims.WORD: "chunk_words", dims.SENTENCE: "chunk_sentences", dims.SUBWORD: "chunk_subwords"}
"""Dim an activation runs along -> the language attr giving its chunk length."""
PER_STEP = (dims.REVISION, dims.COMMIT, dims.FINGERPRINT, dims.HELDOUT_LOSS)
"""Per-step coordinates written by the job of each step: one chunk per step."""
_INTEGER_LABELS = {dims.SENTENCE_INDEX, dims.SUBWORDS, dims.SENTENCE_TOKENS, dims.SUBWORD_WORD}


def language_group(language: str) -> str:
    """Path of the group that holds ``language``."""
    return f"{LANGUAGES_GROUP}/{language}"


def array_dims(name: str, *, group: str = "languages/{language}") -> tuple[str, ...]:
    """Dimension names of array ``name``, as the schema declares them."""
    return load_schema().group(group).array(name).dims


def schema_attr(version: int | None = None) -> dict[str, Any]:
    """The root attr that says which schema a store follows."""
    schema = load_schema(version)
    return {"name": schema.name, "version": latest_version() if version is None else version}


@dataclass(frozen=True, kw_only=True, slots=True)
class LanguageMeta:
    """The attrs of a language group."""

    language: str
    treebanks: tuple[str, ...]
    attributes: tuple[str, ...]
    label_scheme: str
    split_mode: str
    chunk_words: int
    chunk_sentences: int
    chunk_subwords: int | None = None
    """None where subwords are not kept."""
    windowed_sentences: int = 0
    """Sentences longer than the model's window, run in overlapping windows."""
    unencoded_words: int = 0
    """Words that no subword encodes: their vectors are NaN."""

    def chunk_size(self, dim: str) -> int:
        size: int | None = getattr(self, CHUNK_ATTRS[dim])
        if size is None:
            raise KeyError(f"{self.language} keeps no subwords")
        return size

    def to_attrs(self) -> dict[str, Any]:
        attrs = asdict(self)
        attrs["treebanks"], attrs["attributes"] = list(self.treebanks), list(self.attributes)
        if self.chunk_subwords is None:
            del attrs["chunk_subwords"]
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> LanguageMeta:
        return cls(
            language=str(attrs["language"]),
            treebanks=tuple(attrs["treebanks"]),
            attributes=tuple(attrs["attributes"]),
            label_scheme=str(attrs["label_scheme"]),
            split_mode=str(attrs["split_mode"]),
            chunk_words=int(attrs["chunk_words"]),
            chunk_sentences=int(attrs["chunk_sentences"]),
            chunk_subwords=None if attrs.get("chunk_subwords") is None else int(attrs["chunk_subwords"]),
            windowed_sentences=int(attrs.get("windowed_sentences", 0)),
            # Schema 1 stores cut long sentences and counted their words as truncated.
            unencoded_words=int(attrs.get("unencoded_words", attrs.get("truncated_words", 0))),
        )


def _strings(values: Sequence[str] | np.ndarray) -> np.ndarray:
    # Object arrays become Zarr v3 variable-length strings, which other readers understand.
    return np.asarray(values, dtype=object)


def _coordinate(name: str, values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64) if name in _INTEGER_LABELS else _strings(values)


def root_dataset(
    *,
    steps: Sequence[int],
    revisions: Sequence[str],
    layers: Sequence[int],
    provenance: Mapping[str, Any],
    commits: Sequence[str] | None = None,
    fingerprints: Sequence[str] | None = None,
) -> xr.Dataset:
    """The root group: per-step coordinates, layers and provenance.

    ``commits`` and ``fingerprints`` default to empty strings, filled in by extraction.
    """
    blank = [""] * len(steps)
    return xr.Dataset(
        coords={
            dims.STEP: (dims.STEP, np.asarray(steps, dtype=np.int64)),
            dims.REVISION: (dims.STEP, _strings(revisions)),
            dims.COMMIT: (dims.STEP, _strings(commits or blank)),
            dims.FINGERPRINT: (dims.STEP, _strings(fingerprints or blank)),
            dims.LAYER: (dims.LAYER, np.asarray(layers, dtype=np.int64)),
        },
        attrs={SCHEMA_ATTR: schema_attr(), PROVENANCE_ATTR: dict(provenance)},
    )


def language_dataset(
    *,
    meta: LanguageMeta,
    steps: Sequence[int],
    layers: Sequence[int],
    words: Mapping[str, Any],
    sentences: Mapping[str, Any],
    data: Mapping[str, Any],
    heldout_loss: Sequence[float] | np.ndarray | None = None,
    subword_word: Sequence[int] | np.ndarray | None = None,
) -> xr.Dataset:
    """One language group.

    Parameters
    ----------
    words
        One sequence per word for every name in :data:`WORD_LABELS` and ``meta.attributes``.
    sentences
        One sequence per sentence for every name in ``SENTENCE_LABELS``.
    data
        The data arrays by name (numpy, or lazy Dask arrays for a template that writers
        fill chunk by chunk); see :func:`empty_language_data`.
    heldout_loss
        Per step; NaN (not measured) by default.
    """
    coords: dict[str, Any] = {
        dims.STEP: (dims.STEP, np.asarray(steps, dtype=np.int64)),
        dims.LAYER: (dims.LAYER, np.asarray(layers, dtype=np.int64)),
        dims.HELDOUT_LOSS: (
            dims.STEP,
            np.full(len(steps), np.nan, dtype=np.float32)
            if heldout_loss is None
            else np.asarray(heldout_loss, dtype=np.float32),
        ),
    }
    for name in (*WORD_LABELS, *meta.attributes):
        coords[name] = (dims.WORD, _coordinate(name, words[name]))
    for name in SENTENCE_LABELS:
        coords[name] = (dims.SENTENCE, _coordinate(name, sentences[name]))
    if subword_word is not None:
        coords[dims.SUBWORD_WORD] = (dims.SUBWORD, _coordinate(dims.SUBWORD_WORD, subword_word))
    variables = {name: (array_dims(name), values) for name, values in data.items()}
    return xr.Dataset(variables, coords=coords, attrs=meta.to_attrs())


def n_chunks(size: int, chunk: int) -> int:
    """Chunks needed for ``size`` items (at least one, so empty arrays still have a flag)."""
    return max(1, math.ceil(size / chunk))


def empty_language_data(
    meta: LanguageMeta,
    *,
    n_steps: int,
    n_layers: int,
    n_words: int,
    n_sentences: int,
    neurons: int,
    dtype: str,
    n_subwords: int | None = None,
    shard: bool = False,
) -> dict[str, Any]:
    """Data arrays of a template: lazy NaN activations and all-False done flags.

    Writing the template with ``compute=False`` writes only metadata, the coordinates and
    the done flags; activation chunks appear as extraction fills them. With ``shard`` the
    lazy arrays are chunked as the shards of :func:`encodings`, which xarray requires.
    """
    sizes = {dims.WORD: n_words, dims.SENTENCE: n_sentences}
    if n_subwords is not None:
        sizes[dims.SUBWORD] = n_subwords
    data: dict[str, Any] = {}
    for name, (along, done) in ACTIVATIONS.items():
        if along not in sizes:
            continue
        chunk = meta.chunk_size(along)
        data[name] = da.full(
            (n_steps, n_layers, sizes[along], neurons),
            np.nan,
            dtype=dtype,
            chunks=(1, n_layers if shard else 1, chunk, neurons),
        )
        data[done] = np.zeros((n_steps, n_chunks(sizes[along], chunk)), dtype=bool)
    data[dims.SENTENCE_LOSS] = da.full(
        (n_steps, n_sentences), np.nan, dtype=np.float32, chunks=(1, meta.chunk_sentences)
    )
    return data


def encodings(
    ds: xr.Dataset, *, keep_bits: int | None = None, shard: bool = False
) -> dict[str, dict[str, Any]]:
    """Zarr encodings of a group: chunks that writers own, codecs, checksums.

    Activations are chunked ``(1, 1, chunk, neuron)``: one (step, layer) slab of one chunk
    of words, the unit analyses read. They are compressed with Blosc-lz4 (level 9) and bit
    shuffle (Blosc under Zarr v3 needs the typesize said), optionally rounded to ``keep_bits``
    mantissa bits first, and carry a CRC32C checksum so a corrupted chunk fails loudly.
    Per-step arrays get one chunk per step, so that the job of each step owns its chunks.
    With ``shard``, the chunks of all layers of one chunk of items at one step are stored as
    one object (a Zarr v3 shard, ``(1, layer, chunk, neuron)``), which that step's job writes
    whole; each inner chunk keeps its own codecs and checksum, and the shard's index has one.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, variable in ds.variables.items():
        name = str(name)
        if name in ACTIVATIONS:
            along = ACTIVATIONS[name][0]
            chunk = LanguageMeta.from_attrs(ds.attrs).chunk_size(along)
            out[name] = {
                "chunks": (1, 1, chunk, ds.sizes[dims.NEURON]),
                "compressors": (
                    BloscCodec(cname="lz4", clevel=9, shuffle="bitshuffle", typesize=variable.dtype.itemsize),
                    Crc32cCodec(),
                ),
            }
            if shard:
                out[name]["shards"] = (1, ds.sizes[dims.LAYER], chunk, ds.sizes[dims.NEURON])
            if keep_bits is not None:
                out[name]["filters"] = (_bit_round(keep_bits),)
        elif name in DONE_FLAGS:
            out[name] = {"chunks": (1, variable.shape[1])}
        elif name == dims.SENTENCE_LOSS:
            out[name] = {"chunks": (1, int(ds.attrs["chunk_sentences"]))}
        elif name in PER_STEP:
            out[name] = {"chunks": (1,)}
    return out


def _bit_round(keep_bits: int) -> Any:
    """numcodecs' BitRound as a Zarr v3 filter: lossy, and readable by zarr-python only."""
    from zarr.codecs.numcodecs import BitRound

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr")
        return BitRound(keepbits=keep_bits)
