"""Overlapping windows over sentences longer than the model's window, so that no word is cut.

A sentence of ``n`` subwords that fits in ``max_length`` is one window. A longer one is cut
into windows of ``max_length`` subwords, each later window repeating the last ``stride``
subwords of the one before as left context (as Hugging Face tokenizers' ``stride`` with
overflowing tokens). Every subword position is *owned* by exactly one window: the first
window owns its whole span, a later window only what follows its left context. A position's
hidden state, and the next-token prediction made there, are taken from its owner, so each
position beyond the first window is seen with at least ``stride`` subwords of left context.

A causal model's states in the first window equal those of one pass over the whole
sentence; later windows differ by the context they lack, less the more context they keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WindowRows", "default_stride", "sentence_windows", "window_rows"]


def default_stride(max_length: int) -> int:
    """Left context of later windows when none is given: half the window."""
    return max_length // 2


def sentence_windows(length: int, *, max_length: int, stride: int) -> np.ndarray:
    """Windows of a sentence of ``length`` subwords: rows of ``(start, end, owned_from)``.

    Window ``i`` holds subwords ``start:end`` and owns ``owned_from:end``; the owned spans
    of the windows tile ``0:length``. No window for an empty sentence.
    """
    if not 0 <= stride < max_length:
        raise ValueError(f"stride must be between 0 and max_length - 1 ({max_length - 1}), got {stride}")
    if length <= max_length:
        return np.asarray([[0, length, 0]] if length else [], dtype=np.int64).reshape(-1, 3)
    advance = max_length - stride
    starts = np.arange(0, length - stride, advance, dtype=np.int64)
    starts = starts[starts + stride < length]
    ends = np.minimum(starts + max_length, length)
    owned = np.where(starts == 0, 0, starts + stride)
    # The last window must reach the end: stop at the first that does.
    last = int(np.flatnonzero(ends == length)[0])
    return np.stack([starts, ends, owned], axis=1)[: last + 1]


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowRows:
    """The model inputs of a batch of sentences cut into windows, and who owns each position.

    Row ``r`` of the model's input is window ``rows[r] = (sentence, start, end)`` of the batch;
    position ``p`` of batch sentence ``b`` is read at flat row-space index ``owner[b][p]``
    (``row * width + offset``).
    """

    rows: np.ndarray
    """``(row, 3)``: batch sentence, start, end."""
    width: int
    """Longest window of the batch: the width of the right-padded input."""
    owner_ptr: np.ndarray
    """Positions of batch sentence ``b`` are ``owner[owner_ptr[b]:owner_ptr[b+1]]``."""
    owner: np.ndarray

    def owners_of(self, sentence: int) -> np.ndarray:
        return self.owner[self.owner_ptr[sentence] : self.owner_ptr[sentence + 1]]


def window_rows(lengths: np.ndarray, *, max_length: int, stride: int) -> WindowRows:
    """Cut each sentence of a batch (``lengths`` subwords each) into windows."""
    windows = [sentence_windows(int(n), max_length=max_length, stride=stride) for n in lengths]
    rows = [(b, int(start), int(end)) for b, spans in enumerate(windows) for start, end, _ in spans.tolist()]
    width = max([1, *(end - start for _, start, end in rows)])
    owner = np.zeros(int(np.sum(lengths)), dtype=np.int64)
    owner_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    row = 0
    for b, spans in enumerate(windows):
        for start, end, owned in spans.tolist():
            positions = np.arange(owned, end)
            owner[owner_ptr[b] + positions] = row * width + (positions - start)
            row += 1
    return WindowRows(
        rows=np.asarray(rows, dtype=np.int64).reshape(-1, 3), width=width, owner_ptr=owner_ptr, owner=owner
    )
