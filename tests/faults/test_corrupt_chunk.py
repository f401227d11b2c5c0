"""A damaged chunk is caught by its CRC32C checksum and named: array, chunk index, key.

By an analysis that reads it (the probing grid, and the probe command) and by
``xalign validate --checksums``, which reads every chunk and lists each damaged one.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from xalign.analysis.probing import ProbeParams, run_probe_grid
from xalign.cli.main import cli
from xalign.errors import CorruptChunkError, XalignError
from xalign.store.integrity import ChunkFault, corrupt_chunk_error, find_corrupt_chunks
from xalign.testing import SyntheticSpec, write_synthetic_store

SPEC = SyntheticSpec(languages=("en", "fr"), steps=(0, 1000), layers=(0, 1), words=600, chunk_words=256)
HIDDEN_KEY = "languages/fr/hidden/c/1/1/1/0"
"""Step index 1 (step 1000), layer index 1 (layer 1), words 256..511 of fr."""
MEAN_KEY = "languages/en/sentence_mean/c/0/1/0/0"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    location = tmp_path / "s.zarr"
    write_synthetic_store(str(location), SPEC)
    return location


def _flip_bytes(path: Path) -> bytes:
    """Invert four bytes in the middle of a chunk file; return its original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    path.write_bytes(bytes(data))
    return original


def test_probing_a_corrupt_chunk_names_the_array_and_the_chunk(store: Path) -> None:
    _flip_bytes(store / HIDDEN_KEY)
    params = ProbeParams(probe="gaussian", k=2, min_count=5)
    with pytest.raises(CorruptChunkError) as caught:
        run_probe_grid(str(store), params=params, steps=[1000], layers=[1], languages=["fr"])
    error = caught.value
    assert isinstance(error, XalignError)
    assert [(f.array, f.chunk, f.key) for f in error.faults] == [
        ("languages/fr/hidden", (1, 1, 1, 0), HIDDEN_KEY)
    ]
    message = str(error)
    where = "languages/fr/hidden: chunk (1, 1, 1, 0) [step[1], layer[1], word[256:512], neuron[0:32]]"
    assert where in message
    assert "CRC32C checksum" in message
    assert "while probing step 1000, layer 1, fr" in message
    assert f"xalign validate --checksums {store}" in message
    # Other slabs read well: the grid probes them.
    report = run_probe_grid(str(store), params=params, steps=[0], layers=[1], languages=["fr"])
    assert report.slabs_run == 1


def test_transfer_and_direct_reads_name_the_chunk_too(store: Path) -> None:
    from xalign import open_store
    from xalign.analysis.transfer import TransferParams, transfer_slab

    opened = open_store(str(store))
    clean = opened.slab("fr", step=0, layer=1)
    expected = opened.activations("fr", step=0, layer=1).transpose("word", "neuron").values
    assert clean.shape == (opened.dataset("fr").sizes["word"], SPEC.neurons)
    assert (clean == expected).all()
    _flip_bytes(store / HIDDEN_KEY)
    with pytest.raises(CorruptChunkError, match="while transfer at step 1000, layer 1") as caught:
        transfer_slab(opened, 1000, 1, ["en", "fr"], ["Number"], TransferParams(min_count=5))
    assert [f.key for f in caught.value.faults] == [HIDDEN_KEY]
    with pytest.raises(CorruptChunkError, match="while reading step 1000, layer 1 of fr"):
        opened.slab("fr", step=1000, layer=1)


def test_the_probe_command_says_so_in_one_line(store: Path) -> None:
    _flip_bytes(store / HIDDEN_KEY)
    result = CliRunner().invoke(
        cli, ["probe", str(store), "--probe", "gaussian", "--k", "2", "--min-count", "5", "--language", "fr"]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert "Error: " in result.output
    assert "languages/fr/hidden: chunk (1, 1, 1, 0)" in result.output
    assert "Traceback" not in result.output


def test_validate_checksums_lists_every_damaged_chunk(store: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(cli, ["validate", "--checksums", str(store)])
    assert clean.exit_code == 0, clean.output
    assert "every chunk reads back intact" in clean.output
    hidden = _flip_bytes(store / HIDDEN_KEY)
    mean_file = store / MEAN_KEY
    mean = mean_file.read_bytes()
    mean_file.write_bytes(mean[: len(mean) // 2])  # truncated

    result = runner.invoke(cli, ["validate", "--checksums", str(store)])
    assert result.exit_code == 1
    listed = [line for line in result.output.splitlines() if "chunk (" in line]
    assert len(listed) == 2, result.output
    assert listed[0].startswith("languages/en/sentence_mean: chunk (0, 1, 0, 0)")
    assert listed[1].startswith("languages/fr/hidden: chunk (1, 1, 1, 0) [step[1], layer[1], word[256:512]")
    assert all("CRC32C checksum" in line for line in listed)
    assert f"(key {HIDDEN_KEY})" in listed[1]
    assert "0 schema violation(s), 2 corrupt chunk(s)" in result.output
    # Without --checksums only metadata is read: the schema holds.
    assert runner.invoke(cli, ["validate", str(store)]).exit_code == 0

    (store / HIDDEN_KEY).write_bytes(hidden)
    mean_file.write_bytes(mean)
    assert find_corrupt_chunks(str(store)) == []


def test_an_unwritten_chunk_is_not_a_fault(store: Path) -> None:
    (store / HIDDEN_KEY).unlink()  # as an unfinished extraction leaves it: fill values
    assert find_corrupt_chunks(str(store)) == []


def test_scans_in_batches_and_bisects_to_each_bad_chunk(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xalign.store.integrity as integrity

    monkeypatch.setattr(integrity, "BATCH_BYTES", 4096)  # a few chunks per read
    for key in (HIDDEN_KEY, "languages/fr/hidden/c/1/1/0/0", "languages/en/hidden/c/0/0/2/0"):
        _flip_bytes(store / key)
    found = {(f.array, f.chunk) for f in find_corrupt_chunks(str(store))}
    assert found == {
        ("languages/fr/hidden", (1, 1, 1, 0)),
        ("languages/fr/hidden", (1, 1, 0, 0)),
        ("languages/en/hidden", (0, 0, 2, 0)),
    }


def test_the_error_crosses_process_boundaries_and_other_errors_pass(store: Path) -> None:
    fault = ChunkFault(array="a/b", chunk=(0, 1), key="a/b/c/0/1", region="x[0:2], y[2:4]", problem="bad")
    error = CorruptChunkError("s.zarr", [fault], "probing")
    again = pickle.loads(pickle.dumps(error))  # a Dask worker sends it to the client
    assert isinstance(again, CorruptChunkError)
    assert again.faults == (fault,)
    assert str(again) == str(error)
    # A read error in a healthy region is not blamed on the chunks.
    assert corrupt_chunk_error(str(store), "languages/fr/hidden", ValueError("other")) is None
    assert corrupt_chunk_error(str(store), "languages/fr/hidden", OSError("disk")) is None
