"""Tokenise a corpus and map every UD word to the subword positions that cover it.

Pure functions of a tokenizer and a :class:`~xalign.treebank.corpus.Corpus`: no model,
no torch. The result, an :class:`EncodedCorpus`, is flat (CSR-style) numpy arrays, so a
language of any size costs a few integers per subword.

Two contexts are offered:

``sentence`` (default)
    The real sentence text goes through the tokenizer once; a word gets every subword
    whose character offsets overlap the span of its surface token (the syntactic words of
    a multiword token share the token's subwords).
``word`` (the reference's)
    Each word form is tokenised alone, without a leading space, and the ids are
    concatenated; a word gets exactly its own subwords.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from xalign.treebank.corpus import Corpus

__all__ = ["Context", "EncodedCorpus", "Tokenizer", "encode_corpus", "word_positions"]

Context = Literal["sentence", "word"]


class Tokenizer(Protocol):
    """What xalign needs of a Hugging Face fast tokenizer."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...


def word_positions(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The subword positions that cover each word.

    Parameters
    ----------
    offsets
        Character span of each subword in the text; ``(0, 0)`` marks a special token.
    spans
        Character span of each word's surface token.

    Returns
    -------
    list of list of int
        For each word, the positions whose span overlaps the word's span, in order. A
        subword that straddles two words belongs to both; a word left with none (its
        characters produced no subword) gets an empty list.
    """
    if not spans:
        return []
    tokens = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    words = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    real = tokens[:, 0] < tokens[:, 1]
    overlap = (
        real[None, :] & (tokens[None, :, 0] < words[:, 1, None]) & (tokens[None, :, 1] > words[:, 0, None])
    )
    return [np.flatnonzero(row).tolist() for row in overlap]


@dataclass(frozen=True, kw_only=True, slots=True)
class EncodedCorpus:
    """Token ids of every sentence and the subword positions of every word, flat.

    Sentence ``s`` has tokens ``ids[token_ptr[s]:token_ptr[s+1]]`` and words
    ``word_ptr[s]:word_ptr[s+1]``; word ``w`` pools the sentence-relative positions
    ``positions[position_ptr[w]:position_ptr[w+1]]``.
    """

    ids: np.ndarray
    token_ptr: np.ndarray
    word_ptr: np.ndarray
    positions: np.ndarray
    position_ptr: np.ndarray

    @property
    def n_sentences(self) -> int:
        return len(self.token_ptr) - 1

    @property
    def n_words(self) -> int:
        return len(self.position_ptr) - 1

    @property
    def n_subwords(self) -> int:
        return len(self.ids)

    @property
    def sentence_lengths(self) -> np.ndarray:
        """Subwords per sentence."""
        return np.diff(self.token_ptr)

    @property
    def subwords_per_word(self) -> np.ndarray:
        """Subword positions pooled into each word; 0 for a word that no subword encodes."""
        return np.diff(self.position_ptr)

    @property
    def unencoded_words(self) -> np.ndarray:
        """Corpus indices of the words that no subword encodes (their vectors are NaN)."""
        return np.flatnonzero(self.subwords_per_word == 0)

    def windowed_sentences(self, max_length: int) -> int:
        """Sentences longer than ``max_length`` subwords, which run in overlapping windows."""
        return int((self.sentence_lengths > max_length).sum())

    def sentence_ids(self, sentence: int) -> np.ndarray:
        return self.ids[self.token_ptr[sentence] : self.token_ptr[sentence + 1]]

    def word_positions_of(self, sentence: int) -> list[np.ndarray]:
        """Sentence-relative subword positions of each word of ``sentence``."""
        return [
            self.positions[self.position_ptr[w] : self.position_ptr[w + 1]]
            for w in range(self.word_ptr[sentence], self.word_ptr[sentence + 1])
        ]

    def subword_word(self) -> np.ndarray:
        """For every subword of the corpus, the (corpus) index of the first word it belongs to, or -1."""
        owner = np.full(self.n_subwords, -1, dtype=np.int64)
        for sentence in range(self.n_sentences):
            base = self.token_ptr[sentence]
            for w in range(self.word_ptr[sentence + 1] - 1, self.word_ptr[sentence] - 1, -1):
                # Backwards, so a subword shared by two words ends up with the first.
                owner[base + self.positions[self.position_ptr[w] : self.position_ptr[w + 1]]] = w
        return owner


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer, *, context: Context = "sentence") -> EncodedCorpus:
    """Tokenise ``corpus`` and align its words to subwords.

    Every subword is kept, however long the sentence: sentences longer than the model's
    window run in overlapping windows (:mod:`xalign.extract.windows`).
    """
    ids: list[np.ndarray] = []
    per_word: list[np.ndarray] = []
    words_per_sentence: list[int] = []
    for sentence in corpus.sentences:
        if context == "sentence":
            encoded = tokenizer(sentence.text, add_special_tokens=False, return_offsets_mapping=True)
            sentence_ids = list(encoded["input_ids"])
            positions = word_positions(encoded["offset_mapping"], [w.span for w in sentence.words])
        elif context == "word":
            sentence_ids, positions = [], []
            for word in sentence.words:
                word_ids = list(tokenizer(word.form, add_special_tokens=False)["input_ids"])
                positions.append(list(range(len(sentence_ids), len(sentence_ids) + len(word_ids))))
                sentence_ids += word_ids
        else:
            raise ValueError(f"context must be 'sentence' or 'word', got {context!r}")
        ids.append(np.asarray(sentence_ids, dtype=np.int64))
        per_word += [np.asarray(p, dtype=np.int32) for p in positions]
        words_per_sentence.append(len(sentence.words))
    return EncodedCorpus(
        ids=np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
        token_ptr=_pointers([len(i) for i in ids]),
        word_ptr=_pointers(words_per_sentence),
        positions=np.concatenate(per_word) if per_word else np.zeros(0, dtype=np.int32),
        position_ptr=_pointers([len(p) for p in per_word]),
    )


def _pointers(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
