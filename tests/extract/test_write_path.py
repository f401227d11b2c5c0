"""The cheaper write path: row groups on CPU, the float16 range check, the codec, whole-chunk writes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from tests.extract.conftest import small_config
from xalign import dims
from xalign.extract import Checkpoint, ExtractionError, encode_corpus, extract_store
from xalign.extract import forward as forward_module
from xalign.extract.forward import row_groups, run_batch
from xalign.extract.sink import ChunkSink, ChunkWriter, check_range
from xalign.testing import assert_stores_equal
from xalign.treebank.corpus import load_corpora

FLOAT16 = np.dtype(np.float16)


@pytest.mark.parametrize(
    ("values", "magnitude"),
    [
        ([1e6], "1e+06"),
        ([0.5, np.nan, -7e4], "7e+04"),
        ([np.inf], "inf"),
        ([1.0, -np.inf], "inf"),
        ([65505.0], "6.55e+04"),
    ],
)
def test_a_value_beyond_float16_is_refused_with_its_magnitude(values: list[float], magnitude: str) -> None:
    with pytest.raises(
        ExtractionError,
        match=re.escape(
            f"h: a value of magnitude {magnitude} is beyond the float16 range (65504); "
            "rerun with --dtype float32"
        ),
    ):
        check_range(np.asarray(values, dtype=np.float32), FLOAT16, "h")


@pytest.mark.parametrize("values", [[65504.0, -65504.0], [np.nan, np.nan], [np.nan, 3.0, -2.0], [0.0, -0.0]])
def test_values_within_float16_pass_the_check(values: list[float]) -> None:
    check_range(np.asarray(values, dtype=np.float32), FLOAT16, "h")


def test_only_float16_targets_are_checked() -> None:
    check_range(np.asarray([1e30, np.inf], dtype=np.float32), np.dtype(np.float32), "loss")
    check_range(np.zeros((3, 0, 4), dtype=np.float32), FLOAT16, "h")


def test_the_check_sees_every_layer_of_a_strided_view() -> None:
    values = np.zeros((3, 10, 4), dtype=np.float32)
    values[2, 7, 1] = -1e5
    with pytest.raises(ExtractionError, match="magnitude 1e\\+05"):
        check_range(values[:, 5:9], FLOAT16, "h")


def test_rows_group_by_rows_and_by_padded_positions() -> None:
    rows = np.array([[0, 0, 9], [1, 0, 8], [2, 0, 5], [3, 0, 4], [4, 0, 0]])
    assert row_groups(rows, most_rows=16) == [(0, 5, 9)]
    assert row_groups(rows, most_rows=2) == [(0, 2, 9), (2, 4, 5), (4, 5, 1)]
    # At most 16 padded positions: 9 alone (2 x 9 > 16), then 8 + 5 = 2 x 8, then 4 + 0 = 2 x 4.
    assert row_groups(rows, most_rows=16, most_positions=16) == [(0, 1, 9), (1, 3, 8), (3, 5, 4)]
    # A row longer than the budget still runs, alone.
    assert row_groups(rows[:2], most_rows=16, most_positions=3) == [(0, 1, 9), (1, 2, 8)]
    assert row_groups(rows[:0], most_rows=4, most_positions=8) == []


def test_row_groups_on_cpu_pool_the_same_values_as_whole_batches(
    checkpoints: list[Checkpoint], treebanks: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short windows (a few sentences need several) and a budget of a few positions: many
    groups, each cut to its own width, give the whole batch's vectors and losses (to float
    rounding: the kernels see other shapes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = small_config()
    corpus = load_corpora([treebanks["fr"]], options=config.corpus)["fr"]
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[-1].source)
    model = AutoModelForCausalLM.from_pretrained(checkpoints[-1].source).eval()
    encoded = encode_corpus(corpus, tokenizer, context=config.context)
    sentences = np.argsort(-encoded.sentence_lengths, kind="stable")[:6]
    arguments: dict[str, Any] = {
        "layers": (0, 1, 2),
        "pooling": "mean",
        "pad_id": int(tokenizer.pad_token_id or 0),
        "max_length": 16,
        "stride": 4,
        "keep_subwords": True,
        "with_loss": True,
    }
    assert encoded.sentence_lengths[sentences].max() > 16  # windows are exercised
    monkeypatch.setattr(forward_module, "CPU_GROUP_VALUES", 10**9)
    whole = run_batch(model, encoded, sentences, **arguments)
    monkeypatch.setattr(forward_module, "CPU_GROUP_VALUES", 20 * model.config.hidden_size)
    grouped = run_batch(model, encoded, sentences, **arguments)
    np.testing.assert_allclose(grouped.sentence_mean, whole.sentence_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grouped.sentence_last, whole.sentence_last, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grouped.loss, whole.loss, rtol=1e-5, atol=1e-5)
    assert grouped.subwords is not None
    assert whole.subwords is not None
    for mine, theirs in zip(
        [*grouped.words, *grouped.subwords], [*whole.words, *whole.subwords], strict=True
    ):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5)


def test_extraction_in_small_row_groups_agrees_within_one_float16_ulp(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = {budget: str(tmp_path / f"budget{budget}.zarr") for budget in (10**9, 32 * 24)}
    for budget, location in stores.items():
        monkeypatch.setattr(forward_module, "CPU_GROUP_VALUES", budget)
        extract_store(location, checkpoints[1:2], [treebanks["fr"]], small_config(max_length=24))
    assert_stores_equal(*stores.values(), ulps=1)


def test_activations_are_compressed_and_carry_a_crc32c(
    tmp_path: Path, checkpoints: list[Checkpoint], treebanks: dict[str, Path]
) -> None:
    location = tmp_path / "s.zarr"
    extract_store(str(location), checkpoints[1:2], [treebanks["fr"]], small_config(chunk_words=4096))
    hidden = zarr.open_group(str(location), mode="r")[f"languages/fr/{dims.HIDDEN}"]
    assert isinstance(hidden, zarr.Array)
    blosc, crc = hidden.compressors
    assert isinstance(blosc, BloscCodec)
    assert isinstance(crc, Crc32cCodec)
    assert hidden.dtype == np.float16
    assert hidden.nbytes_stored() < 0.95 * hidden.nbytes  # compressed: less than raw float16
    # A flipped byte in a chunk fails the read loudly (the checksum), not silently.
    (chunk,) = [p for p in location.glob(f"languages/fr/{dims.HIDDEN}/c/0/1/**/*") if p.is_file()]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        hidden[0, 1]


def test_a_chunk_of_fill_values_is_still_written_and_flagged() -> None:
    """The sink writes whole chunks without zarr's test against the fill value: a chunk that
    is all NaN (words no subword encodes) is stored like any other, and marked done."""
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    hidden = group.create_array(
        "h", shape=(1, 2, 4, 3), chunks=(1, 1, 4, 3), dtype="float16", fill_value=np.nan
    )
    done = group.create_array("d", shape=(1, 1), chunks=(1, 1), dtype=bool, fill_value=False)
    writer = ChunkWriter()
    sink = ChunkSink(arrays={"h": hidden}, done=done, step_index=0, size=4, chunk=4, writer=writer)
    sink.put(0, {"h": np.full((2, 4, 3), np.nan, dtype=np.float32)})
    writer.close()
    assert bool(done[0, 0])
    assert hidden.nchunks_initialized == 2
    assert np.isnan(hidden[...]).all()
