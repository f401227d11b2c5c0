"""The configuration of an extraction: everything that decides the values in a store.

Two runs with equal configurations write equal stores; a run with a different one against
an existing store is refused (with what differs) unless it overwrites. Checkpoints and
treebanks are not part of it: a store grows by new steps and new languages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from xalign.extract.encode import Context
from xalign.extract.windows import default_stride
from xalign.treebank.corpus import CorpusOptions

__all__ = ["ExtractConfig", "Pooling", "config_differences"]

Pooling = Literal["mean", "first", "last"]
StoredDtype = Literal["float16", "float32"]
ComputeDtype = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtractConfig:
    """How hidden states become the store's vectors.

    Parameters
    ----------
    model_id
        The model's name in provenance (hub id, or the toy manifest's id).
    layers
        Hidden-state indices to keep (0 = embeddings); None keeps all.
    pooling
        How a word's subword vectors become one: their mean (the reference), the first, or the last.
    context
        ``sentence``: the real sentence in one pass; ``word``: each word alone (the reference).
    dtype
        Stored dtype; float16 values beyond its range are an error, never silent inf.
    keep_bits
        Round stored mantissas to this many bits (lossy, smaller); None keeps them all.
    keep_subwords
        Also store every subword's vector and its word.
    max_length
        Subwords per forward pass (the model's window). A longer sentence runs in
        overlapping windows, so every word gets its vector.
    stride
        Subwords of left context that each later window of a long sentence repeats from
        the one before (as Hugging Face tokenizers' ``stride``); None: ``max_length // 2``.
    batch_size
        Sentences per forward pass (length-sorted within a window of the corpus).
    chunk_words, chunk_sentences, chunk_subwords
        Chunk lengths along word, sentence and subword: the unit of writes and of reads.
    shard
        Store the chunks of every layer of one chunk of words (of one step) together in one
        object (a Zarr v3 shard): as many times fewer objects as layers kept, which is what
        object storage wants. Analyses still read one (step, layer) chunk, by a ranged read.
    compute_dtype
        Dtype of the model's weights during the forward pass.
    loss_sentences
        Measure the next-token loss on at least this many sentences of each language: the
        first planned batches (None: all). The same sentences at every step, so losses
        compare across steps; the other batches skip the language-model head, a large part
        of the forward pass when the vocabulary is large (BLOOM's has 250,880 entries).
    corpus
        Labels and splits of the words.
    """

    model_id: str
    layers: tuple[int, ...] | None = None
    pooling: Pooling = "mean"
    context: Context = "sentence"
    dtype: StoredDtype = "float16"
    keep_bits: int | None = None
    keep_subwords: bool = False
    max_length: int = 512
    stride: int | None = None
    batch_size: int = 16
    chunk_words: int = 2048
    chunk_sentences: int = 512
    chunk_subwords: int = 8192
    shard: bool = False
    compute_dtype: ComputeDtype = "float32"
    loss_sentences: int | None = 256
    corpus: CorpusOptions = field(default_factory=CorpusOptions)

    def __post_init__(self) -> None:
        for name in ("max_length", "batch_size", "chunk_words", "chunk_sentences", "chunk_subwords"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.stride is not None and not 0 <= self.stride < self.max_length:
            raise ValueError(
                f"stride must be between 0 and max_length - 1 ({self.max_length - 1}), got {self.stride}"
            )
        if self.loss_sentences is not None and self.loss_sentences < 0:
            raise ValueError(f"loss_sentences must be >= 0 or None, got {self.loss_sentences}")
        limit = 10 if self.dtype == "float16" else 23
        if self.keep_bits is not None and not 1 <= self.keep_bits <= limit:
            raise ValueError(
                f"keep_bits must be between 1 and {limit} for {self.dtype}, got {self.keep_bits}"
            )

    @property
    def window_stride(self) -> int:
        """The left context of later windows, with the default resolved."""
        return default_stride(self.max_length) if self.stride is None else self.stride

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as stored in the store's provenance."""
        out = asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        plain: dict[str, Any] = json.loads(json.dumps(out))  # tuples -> lists, as JSON gives them back
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractConfig:
        data = dict(data)
        corpus = dict(data.pop("corpus", {}))
        for key in ("features", "fractions"):
            if corpus.get(key) is not None:
                corpus[key] = tuple(corpus[key])
        layers = data.pop("layers", None)
        return cls(layers=None if layers is None else tuple(layers), corpus=CorpusOptions(**corpus), **data)

    def digest(self) -> str:
        """A hash of the configuration, recorded in the store."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def config_differences(stored: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable ``key: stored -> wanted`` lines for every setting that differs."""
    lines = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += config_differences(a, b, prefix=f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: store has {a!r}, this run asks for {b!r}")
    return lines
