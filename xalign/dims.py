"""Dimension and coordinate names, declared once.

Every array in a store and in every result names its axes with these constants;
analysis code indexes by name, never by position.
"""

from typing import Final

STEP: Final = "step"
"""Training checkpoint, by optimiser step."""
LAYER: Final = "layer"
"""Hidden-state index: 0 is the embedding output, ``i`` the output of block ``i``."""
WORD: Final = "word"
"""One UD syntactic word of one language."""
NEURON: Final = "neuron"
"""One dimension of the residual stream."""
SENTENCE: Final = "sentence"
"""One sentence of one language."""
SUBWORD: Final = "subword"
"""One subword position of one language (kept on request)."""
WORD_CHUNK: Final = "word_chunk"
"""One chunk along ``word``: the unit of extraction bookkeeping."""
SENTENCE_CHUNK: Final = "sentence_chunk"
SUBWORD_CHUNK: Final = "subword_chunk"
LANGUAGE: Final = "language"
ATTRIBUTE: Final = "attribute"
RANK: Final = "rank"
"""Position in a greedy neuron selection (0 = chosen first)."""

# Per-step coordinates.
REVISION: Final = "revision"
COMMIT: Final = "commit"
FINGERPRINT: Final = "fingerprint"
HELDOUT_LOSS: Final = "heldout_loss"

# Per-word label coordinates (attribute labels are added under their own names).
TREEBANK: Final = "treebank"
SPLIT: Final = "split"
SENT_ID: Final = "sent_id"
SENTENCE_INDEX: Final = "sentence_index"
FORM: Final = "form"
LEMMA: Final = "lemma"
UPOS: Final = "upos"
SUBWORDS: Final = "subwords"
"""Number of subword positions pooled into a word (0 = no subword encodes it: its vectors are NaN)."""

# Per-sentence coordinates.
SENTENCE_ID: Final = "sentence_id"
TEXT: Final = "text"
SENTENCE_TOKENS: Final = "sentence_tokens"

# Per-subword coordinates.
SUBWORD_WORD: Final = "subword_word"

# Data variables.
HIDDEN: Final = "hidden"
DONE: Final = "done"
SENTENCE_MEAN: Final = "sentence_mean"
SENTENCE_LAST: Final = "sentence_last"
SENTENCE_LOSS: Final = "sentence_loss"
SENTENCE_DONE: Final = "sentence_done"
SUBWORD_HIDDEN: Final = "subword_hidden"
SUBWORD_DONE: Final = "subword_done"

SPLITS: Final = ("train", "dev", "test")
"""Split names, in their canonical order."""
NO_VALUE: Final = ""
"""Label of a word that does not carry an attribute."""
LANGUAGE_OTHER: Final = "language_other"
"""The second language of a language pair."""
TASK: Final = "task"
"""A downstream task of imported transfer scores (e.g. XNLI)."""
STATISTIC: Final = "statistic"
"""A correlation statistic (pearson, spearman). Not "method": ``Dataset.sel(method=...)`` is
xarray's own keyword, so a dim of that name could not be selected by keyword."""
