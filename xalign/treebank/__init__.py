"""Universal Dependencies treebanks: reading CoNLL-U, word labels, splits and filters."""

from xalign.treebank.labels import (
    DEFAULT_ATTRIBUTES,
    LabelScheme,
    UniMorphTable,
    UniMorphTableError,
    word_labels,
)
from xalign.treebank.reader import (
    Sentence,
    Token,
    Word,
    language_of,
    read_conllu,
    split_of,
    treebank_name,
)
from xalign.treebank.splits import (
    AttributeCounts,
    SplitMode,
    assign_splits,
    count_values,
    filter_attributes,
    lemma_key,
    split_by_lemma,
)

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "AttributeCounts",
    "LabelScheme",
    "Sentence",
    "SplitMode",
    "Token",
    "UniMorphTable",
    "UniMorphTableError",
    "Word",
    "assign_splits",
    "count_values",
    "filter_attributes",
    "language_of",
    "lemma_key",
    "read_conllu",
    "split_by_lemma",
    "split_of",
    "treebank_name",
    "word_labels",
]
