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
LANGUAGE: Final = "language"
ATTRIBUTE: Final = "attribute"
RANK: Final = "rank"
"""Position in a greedy neuron selection (0 = chosen first)."""

# Per-step coordinates.
REVISION: Final = "revision"
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

# Per-sentence coordinates.
TEXT: Final = "text"

# Data variables.
HIDDEN: Final = "hidden"
DONE: Final = "done"

SPLITS: Final = ("train", "dev", "test")
"""Split names, in their canonical order."""
NO_VALUE: Final = ""
"""Label of a word that does not carry an attribute."""
LANGUAGE_OTHER: Final = "language_other"
"""The second language of a language pair."""
