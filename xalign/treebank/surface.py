"""Surface tokens as the probed units: the reference's treatment of multiword tokens.

UD splits a contraction such as French "du" (a ``1-2`` range line) into syntactic words
("de", "le"). xalign probes the syntactic words by default (``units="words"``). The
reference (Torroba Hennigen et al. 2020's ``preprocess_treebank.py``, reused by Wang et al.
2024) probes surface tokens instead: a multiword token replaces its words, and its labels
are the merge of theirs, keeping an attribute only when exactly one of the words has it (an
attribute two words carry is dropped even when they agree: "du" keeps ``Gender``,
``Number`` and ``Definite`` from "le" and loses ``POS``). That is ``units="tokens"``.

A multiword token becomes one :class:`~xalign.treebank.reader.Word` with the token's form
and span, LEMMA and UPOS ``_`` (the range line has none; the lemma split then uses the
lowercased form), the merged FEATS, and the line of its first word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from xalign.treebank.reader import Sentence, Token, Word

__all__ = ["Units", "merge_labels", "surface_sentences"]

Units = Literal["words", "tokens"]


def merge_labels(parts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The labels of a multiword token: each attribute exactly one of its words has."""
    seen: dict[str, list[str]] = {}
    for labels in parts:
        for name, value in labels.items():
            seen.setdefault(name, []).append(value)
    return {name: values[0] for name, values in seen.items() if len(values) == 1}


def surface_sentences(
    sentences: Sequence[Sentence], labels: Sequence[Sequence[Mapping[str, str]]]
) -> tuple[tuple[Sentence, ...], tuple[tuple[dict[str, str], ...], ...]]:
    """Sentences whose words are their surface tokens, and the labels of those tokens.

    ``labels`` holds one mapping per syntactic word, one sequence per sentence.
    """
    out_sentences: list[Sentence] = []
    out_labels: list[tuple[dict[str, str], ...]] = []
    for sentence, sentence_labels in zip(sentences, labels, strict=True):
        words: list[Word] = []
        tokens: list[Token] = []
        merged: list[dict[str, str]] = []
        for position, token in enumerate(sentence.tokens):
            parts = [sentence.words[i] for i in token.word_indices]
            if token.is_multiword:
                first = parts[0]
                word = replace(
                    first,
                    index=position + 1,
                    form=token.form,
                    lemma="_",
                    upos="_",
                    feats=merge_labels([w.feats for w in parts]),
                    token_index=position,
                    span=token.span,
                )
                merged.append(merge_labels([sentence_labels[i] for i in token.word_indices]))
            else:
                word = replace(parts[0], index=position + 1, token_index=position)
                merged.append(dict(sentence_labels[token.word_indices[0]]))
            words.append(word)
            tokens.append(replace(token, word_indices=(position,)))
        out_sentences.append(replace(sentence, words=tuple(words), tokens=tuple(tokens)))
        out_labels.append(tuple(merged))
    return tuple(out_sentences), tuple(out_labels)
