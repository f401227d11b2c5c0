"""Train/dev/test splits of words and the reference's attribute-value filters.

The reference pipeline (Wang et al. 2024; ``multilingual-typology-probing/
preprocess_treebank.py`` in ErikaaWang/probing-multilingual-dynamics) pools all files of a
treebank, splits its *distinct lemmas* 80/10/10 (so a lemma falls in one split only) and
gives every word the split of its lemma. Its probing setup then keeps an attribute value
only if it has at least 20 examples in each split, and an attribute only if at least two
values survive.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xalign.dims import NO_VALUE, SPLITS
from xalign.errors import TreebankError
from xalign.treebank.reader import Sentence, Word, split_of

__all__ = [
    "AttributeCounts",
    "SplitMode",
    "assign_splits",
    "count_values",
    "filter_attributes",
    "lemma_key",
    "split_by_lemma",
]

SplitMode = Literal["lemma", "own"]

_DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
# Guards the ceilings below against float noise such as 0.1 * 30 = 3.0000000000000004.
_EPS = 1e-9


def lemma_key(word: Word) -> str:
    """The lemma a word is split by: its LEMMA, or its lowercased FORM if that is ``_``."""
    return word.lemma if word.lemma not in ("", "_") else word.form.lower()


def split_by_lemma(
    lemmas: Iterable[str],
    *,
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
    seed: int = 0,
) -> dict[str, str]:
    """Assign every distinct lemma to one split, by proportion of distinct lemmas.

    As in the reference, the fractions apply to distinct lemmas, not to words, and the
    held-out parts are rounded up: with ``n`` lemmas, dev and test together get
    ``ceil((f_dev + f_test) * n)``, of which test gets the larger half. Unlike the
    reference (scikit-learn's shuffle of lemmas in first-seen order), the distinct
    lemmas are sorted and then permuted with ``numpy.random.default_rng(seed)``, so the
    result depends neither on file order nor on hash randomisation; it can change only
    if NumPy changes its ``Generator.permutation`` stream.

    Parameters
    ----------
    lemmas
        Lemmas, repeats allowed.
    fractions
        Train, dev and test fractions; non-negative, summing to 1.
    seed
        Seed of the permutation.

    Returns
    -------
    dict
        Lemma → ``"train"``, ``"dev"`` or ``"test"``.
    """
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or abs(sum(fractions) - 1) > _EPS:
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    distinct = sorted(set(lemmas))
    n = len(distinct)
    held_out = fractions[1] + fractions[2]
    n_held_out = min(n, math.ceil(held_out * n - _EPS))
    n_test = math.ceil(fractions[2] / held_out * n_held_out - _EPS) if held_out else 0
    n_train = n - n_held_out
    order = np.random.default_rng(seed).permutation(n)
    result: dict[str, str] = {}
    for rank, position in enumerate(order.tolist()):
        if rank < n_train:
            split = SPLITS[0]
        elif rank < n - n_test:
            split = SPLITS[1]
        else:
            split = SPLITS[2]
        result[distinct[position]] = split
    return result


def assign_splits(
    sentences: Iterable[Sentence],
    *,
    mode: SplitMode = "lemma",
    fractions: tuple[float, float, float] = _DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[tuple[str, ...]]:
    """The split of every word, one tuple per sentence.

    Parameters
    ----------
    sentences
        All sentences of one treebank (every file of it, for ``"lemma"``).
    mode
        ``"lemma"``: :func:`split_by_lemma` over :func:`lemma_key` of every word.
        ``"own"``: the split named in each sentence's file name.
    fractions, seed
        Passed to :func:`split_by_lemma`.

    Raises
    ------
    TreebankError
        For ``"own"``, if a file name names no split.
    """
    sentences = list(sentences)
    if mode == "lemma":
        keys = [[lemma_key(word) for word in sentence.words] for sentence in sentences]
        of = split_by_lemma((key for sentence in keys for key in sentence), fractions=fractions, seed=seed)
        return [tuple(of[key] for key in sentence) for sentence in keys]
    if mode == "own":
        result = []
        for sentence in sentences:
            split = split_of(sentence.path)
            if split is None:
                raise TreebankError(
                    sentence.path,
                    None,
                    "the split mode 'own' takes each file's split from its name, and this name has none of "
                    f"{', '.join(SPLITS)}; re-split by lemma instead (xalign: --split lemma, the default)",
                )
            result.append((split,) * len(sentence.words))
        return result
    raise ValueError(f"mode must be 'lemma' or 'own', got {mode!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeCounts:
    """How many words carry each attribute value in each split.

    Parameters
    ----------
    counts
        ``counts[attribute][value][split]``; absent entries count 0.
    """

    counts: Mapping[str, Mapping[str, Mapping[str, int]]]

    def count(self, attribute: str, value: str, split: str) -> int:
        """Number of words of ``split`` whose ``attribute`` is ``value``."""
        return self.counts.get(attribute, {}).get(value, {}).get(split, 0)


def count_values(examples: Iterable[tuple[Mapping[str, str], str]]) -> AttributeCounts:
    """Count attribute values per split.

    Parameters
    ----------
    examples
        ``(labels, split)`` per word, labels as from
        :func:`~xalign.treebank.labels.word_labels`; values equal to ``NO_VALUE`` are
        not counted.
    """
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    )
    for labels, split in examples:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        for attribute, value in labels.items():
            if value != NO_VALUE:
                counts[attribute][value][split] += 1
    return AttributeCounts(counts={attribute: dict(values) for attribute, values in counts.items()})


def filter_attributes(
    counts: AttributeCounts, *, min_count: int = 20, min_values: int = 2
) -> dict[str, tuple[str, ...]]:
    """The attributes and values the reference probes.

    A value is kept if it has at least ``min_count`` words in each of train, dev and
    test; an attribute is kept if at least ``min_values`` of its values are.

    Returns
    -------
    dict
        Attribute → its kept values, both sorted.
    """
    kept: dict[str, tuple[str, ...]] = {}
    for attribute in sorted(counts.counts):
        values = tuple(
            value
            for value in sorted(counts.counts[attribute])
            if all(counts.count(attribute, value, split) >= min_count for split in SPLITS)
        )
        if len(values) >= min_values:
            kept[attribute] = values
    return kept
