"""Which sentences go through the model together, fixed in advance.

The plan is a pure function of the encoded corpus and the configuration, so a resumed run
recomputes exactly the batches of an uninterrupted one (same shapes, same values). The
corpus is cut into windows of consecutive sentences holding about ``window_words`` words;
within a window, sentences are sorted by length (less padding), then batched. Windows keep
memory bounded: chunks fill in corpus order, a window at a time.
"""

from __future__ import annotations

import numpy as np

from xalign.extract.encode import EncodedCorpus
from xalign.store.layout import n_chunks

__all__ = ["loss_batches", "needed_sentences", "plan_batches"]


def plan_batches(encoded: EncodedCorpus, *, batch_size: int, window_words: int) -> list[np.ndarray]:
    """Sentence indices of each forward pass, in the order they run."""
    batches: list[np.ndarray] = []
    words_per_sentence = np.diff(encoded.word_ptr)
    lengths = encoded.sentence_lengths
    start = 0
    while start < encoded.n_sentences:
        end, words = start, 0
        while end < encoded.n_sentences and (words < window_words or end == start):
            words += int(words_per_sentence[end])
            end += 1
        window = np.arange(start, end)
        # Longest first, ties in corpus order: stable, so the plan never depends on the sort.
        window = window[np.argsort(-lengths[window], kind="stable")]
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
        start = end
    return batches


def loss_batches(plan: list[np.ndarray], sentences: int | None) -> list[bool]:
    """Which batches measure the next-token loss: the first ones, covering at least
    ``sentences`` sentences (all for None). Whole batches, so that every other batch can
    skip the language-model head; the same batches at every step."""
    if sentences is None:
        return [True] * len(plan)
    before = np.concatenate([[0], np.cumsum([len(batch) for batch in plan])[:-1]])
    return [bool(b < sentences) for b in before]


def needed_sentences(ptr: np.ndarray, done: np.ndarray, chunk: int) -> np.ndarray:
    """Which sentences have an item in a chunk that is not done.

    Parameters
    ----------
    ptr
        Items of sentence ``s`` are ``ptr[s]:ptr[s+1]`` (its words, its subwords, or
        ``s:s+1`` for per-sentence arrays).
    done
        One flag per chunk of ``chunk`` items.
    """
    starts, ends = ptr[:-1], ptr[1:]
    total = int(ptr[-1])
    assert len(done) == n_chunks(total, chunk), "done flags do not match the items"
    todo = np.concatenate([[0], np.cumsum(~done)])
    first = starts // chunk
    last = np.maximum(ends - 1, starts) // chunk
    # A sentence with no items needs nothing from this array.
    needed: np.ndarray = (ends > starts) & (todo[np.minimum(last, len(done) - 1) + 1] - todo[first] > 0)
    return needed
