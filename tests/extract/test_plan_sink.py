"""Batch plans cover the corpus once, deterministically; sinks write whole chunks only."""

from __future__ import annotations

import errno
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from xalign.extract.encode import EncodedCorpus
from xalign.extract.plan import loss_batches, needed_sentences, plan_batches
from xalign.extract.sink import ChunkSink, ChunkWriter, ExtractionError


def _corpus(words_per_sentence: list[int], subwords_per_sentence: list[int]) -> EncodedCorpus:
    ptr = lambda lengths: np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # noqa: E731
    n_words = sum(words_per_sentence)
    return EncodedCorpus(
        ids=np.zeros(sum(subwords_per_sentence), dtype=np.int64),
        token_ptr=ptr(subwords_per_sentence),
        word_ptr=ptr(words_per_sentence),
        positions=np.zeros(n_words, dtype=np.int32),
        position_ptr=np.arange(n_words + 1, dtype=np.int64),
    )


@given(st.lists(st.integers(0, 30), min_size=1, max_size=60), st.integers(1, 8), st.integers(1, 100))
def test_plan_covers_every_sentence_once(words: list[int], batch_size: int, window: int) -> None:
    corpus = _corpus(words, [w + 1 for w in words])
    batches = plan_batches(corpus, batch_size=batch_size, window_words=window)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(words)))
    assert all(len(b) <= batch_size for b in batches)
    again = plan_batches(corpus, batch_size=batch_size, window_words=window)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_batches_are_sorted_by_length_within_windows() -> None:
    corpus = _corpus([5, 5, 5, 5], [3, 9, 1, 7])
    assert [b.tolist() for b in plan_batches(corpus, batch_size=2, window_words=10)] == [[1, 0], [3, 2]]


def test_loss_is_measured_on_the_first_whole_batches() -> None:
    plan = [np.arange(4), np.arange(4, 8), np.arange(8, 10)]
    assert loss_batches(plan, 5) == [True, True, False]
    assert loss_batches(plan, 4) == [True, False, False]
    assert loss_batches(plan, 0) == [False, False, False]
    assert loss_batches(plan, None) == [True, True, True]


def test_needed_sentences_follow_the_done_flags() -> None:
    ptr = np.array([0, 3, 5, 9, 10])  # 4 sentences over 10 items, chunks of 4: [0-3] [4-7] [8-9]
    done = np.array([True, False, True])
    assert needed_sentences(ptr, done, 4).tolist() == [False, True, True, False]
    assert needed_sentences(ptr, np.ones(3, dtype=bool), 4).tolist() == [False] * 4
    empty = np.array([0, 0, 2])
    assert needed_sentences(empty, np.array([False]), 4).tolist() == [False, True]


def _arrays(tmp: Any, items: int, chunk: int) -> tuple[zarr.Array[Any], zarr.Array[Any], zarr.Array[Any]]:
    group = zarr.open_group(tmp, mode="w")
    hidden = group.create_array(
        "h", shape=(2, 3, items, 4), chunks=(1, 1, chunk, 4), dtype="float16", fill_value=np.nan
    )
    loss = group.create_array("l", shape=(2, items), chunks=(1, chunk), dtype="float32", fill_value=np.nan)
    done = group.create_array(
        "d", shape=(2, -(-items // chunk)), chunks=(1, -(-items // chunk)), dtype=bool, fill_value=False
    )
    return hidden, loss, done


@settings(deadline=None, max_examples=25)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=12), st.integers(1, 10))
def test_sink_writes_whatever_order_items_come_in(sizes: list[int], chunk: int) -> None:
    items = sum(sizes)
    hidden, loss, done = _arrays(zarr.storage.MemoryStore(), items, chunk)
    values = np.random.default_rng(0).standard_normal((3, items, 4)).astype(np.float32)
    writer = ChunkWriter()
    sink = ChunkSink(
        arrays={"h": hidden, "l": loss}, done=done, step_index=1, size=items, chunk=chunk, writer=writer
    )
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for start, size in sorted(
        zip(starts, sizes, strict=True), key=lambda p: -p[1]
    ):  # out of order, like length-sorted batches
        sink.put(int(start), {"h": values[:, start : start + size], "l": values[0, start : start + size, 0]})
    writer.close()
    assert sink.pending == 0
    np.testing.assert_array_equal(hidden[1], values.astype(np.float16))
    np.testing.assert_array_equal(loss[1], values[0, :, 0])
    assert done[1].all()
    assert not done[0].any()
    assert np.isnan(hidden[0]).all()


def test_sink_skips_chunks_already_done() -> None:
    hidden, _, done = _arrays(zarr.storage.MemoryStore(), 8, 4)
    done[0, 0] = True
    writer = ChunkWriter()
    sink = ChunkSink(arrays={"h": hidden}, done=done, step_index=0, size=8, chunk=4, writer=writer)
    sink.put(0, {"h": np.ones((3, 8, 4), dtype=np.float32)})
    writer.close()
    assert np.isnan(hidden[0, :, :4]).all()  # the done chunk was not rewritten
    assert (hidden[0, :, 4:] == 1).all()


def test_float16_overflow_is_an_error_not_inf() -> None:
    hidden, _, done = _arrays(zarr.storage.MemoryStore(), 4, 4)
    sink = ChunkSink(arrays={"h": hidden}, done=done, step_index=0, size=4, chunk=4, writer=ChunkWriter())
    with pytest.raises(ExtractionError, match=r"beyond the float16 range.*--dtype float32"):
        sink.put(0, {"h": np.full((3, 4, 4), 1e6, dtype=np.float32)})


def test_disk_full_is_a_clear_error() -> None:
    writer = ChunkWriter()

    def fail() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer.submit(fail)
    with pytest.raises(ExtractionError, match=r"out of disk space.*rerun the same command"):
        writer.close()
