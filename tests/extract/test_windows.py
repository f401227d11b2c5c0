"""Overlapping windows over long sentences: every position owned once, with its left context."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xalign.extract.windows import default_stride, sentence_windows, window_rows


@given(st.integers(0, 300), st.integers(1, 40), st.data())
def test_owned_spans_tile_the_sentence_within_the_window(
    length: int, max_length: int, data: st.DataObject
) -> None:
    stride = data.draw(st.integers(0, max_length - 1))
    windows = sentence_windows(length, max_length=max_length, stride=stride)
    owned = [position for start, end, first in windows.tolist() for position in range(first, end)]
    assert owned == list(range(length))
    for i, (start, end, first) in enumerate(windows.tolist()):
        assert 0 < end - start <= max_length
        # A later window repeats exactly `stride` subwords of left context before what it owns.
        assert first - start == (0 if i == 0 else stride)
        assert end > first  # every window owns something
    # No more windows than needed: each later one advances by max_length - stride.
    expected = 0 if length == 0 else 1 + max(0, -(-(length - max_length) // (max_length - stride)))
    assert len(windows) == expected


def test_a_sentence_that_fits_is_one_window() -> None:
    assert sentence_windows(5, max_length=8, stride=4).tolist() == [[0, 5, 0]]
    assert sentence_windows(0, max_length=8, stride=4).shape == (0, 3)
    assert sentence_windows(10, max_length=4, stride=2).tolist() == [
        [0, 4, 0],
        [2, 6, 4],
        [4, 8, 6],
        [6, 10, 8],
    ]


def test_stride_must_leave_room_in_the_window() -> None:
    with pytest.raises(ValueError, match="stride must be between 0 and max_length - 1"):
        sentence_windows(10, max_length=4, stride=4)
    assert default_stride(512) == 256


@given(st.lists(st.integers(0, 60), min_size=1, max_size=6), st.integers(2, 16), st.data())
def test_each_position_reads_its_own_token_from_its_owner(
    lengths: list[int], max_length: int, data: st.DataObject
) -> None:
    stride = data.draw(st.integers(0, max_length - 1))
    rows = window_rows(np.asarray(lengths), max_length=max_length, stride=stride)
    # Token ids that say where they come from: sentence b, position p -> 1000 * b + p.
    inputs = np.full((len(rows.rows), rows.width), -1)
    for r, (b, start, end) in enumerate(rows.rows.tolist()):
        inputs[r, : end - start] = 1000 * b + np.arange(start, end)
    flat = inputs.reshape(-1)
    for b, length in enumerate(lengths):
        assert flat[rows.owners_of(b)].tolist() == [1000 * b + p for p in range(length)]
    assert rows.width <= max(1, max_length)
