"""A store in a bucket against the same store on disk: extraction, the probe grid, objects and opening.

Part of the suite (``python -m benchmarks --only objectstore``; alone:
``python -m benchmarks.objectstore``). The bucket is a SeaweedFS S3 server on loopback (what the
tests use: ``tests/s3server.py``), so the figures are the cost of the S3 protocol, the object
layout and xalign's lease and retries, not of a network: a real bucket adds its round-trip time
to every request, which is why the request counts below matter more than the seconds.

- **extraction** by a model of BLOOM-560m's width (hidden size 1024; 2 blocks, so 3 hidden
  states; random weights, 2 checkpoints) over 2 x 60 PUD sentences (``--quick``: 2 x 20) in
  chunks of 256 words (0.5 MiB of float16 per chunk), into a directory, into the bucket, and
  into the bucket with ``shard=True``: CPU seconds of this process (the server's own CPU is not
  counted) and wall seconds;
- **the probe grid** (Gaussian, k = 5, attributes with 5 words per value and split, every step
  and layer, both languages) on each of them;
- **objects** per store, with and without sharding;
- **opening** the bucket's store (``xalign.open_store``) with its consolidated metadata and
  without it: wall seconds and the requests made (reads, listings, existence checks, counted
  by a store wrapper), best of 3.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.common import Row, cpu_seconds, cut, growth_row, scratch, speedup_row, toy_checkpoints
from xalign.store.layout import ACTIVATIONS

NAME = "objectstore"
BUCKET = "xalign-bench"


@contextmanager
def _bucket() -> Iterator[Any]:
    from tests.s3server import running_s3_server

    with running_s3_server(scratch() / "seaweedfs") as server:
        server.filesystem().mkdir(BUCKET)
        yield server


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of ``work()``."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    work()
    return cpu_seconds() - cpu, time.perf_counter() - wall


def _counting(store: Any) -> tuple[Any, Counter[str]]:
    """``store`` wrapped so that every read, listing and existence check is counted."""
    from zarr.storage import WrapperStore

    counts: Counter[str] = Counter()

    class Counting(WrapperStore[Any]):
        fs = property(lambda self: getattr(self._store, "fs", None))
        path = property(lambda self: getattr(self._store, "path", None))

        async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
            counts["get"] += 1
            return await self._store.get(key, *args, **kwargs)

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
            ranges = list(key_ranges)
            counts["get"] += len(ranges)
            return await self._store.get_partial_values(prototype, ranges)

        async def exists(self, key: str) -> bool:
            counts["exists"] += 1
            return bool(await self._store.exists(key))

        def list_dir(self, prefix: str) -> Any:
            counts["list"] += 1
            return self._store.list_dir(prefix)

        def list_prefix(self, prefix: str) -> Any:
            counts["list"] += 1
            return self._store.list_prefix(prefix)

        def list(self) -> Any:
            counts["list"] += 1
            return self._store.list()

    return Counting(store), counts


def _open(location: Any) -> tuple[float, int]:
    """Best-of-3 wall seconds of ``open_store`` and the requests it made (``location`` a store)."""
    import xalign

    best, requests = float("inf"), 0
    for _ in range(3):
        counted, counts = _counting(location)
        start = time.perf_counter()
        store = xalign.open_store(counted)
        _ = store.languages, store.steps, store.layers
        best, requests = min(best, time.perf_counter() - start), sum(counts.values())
    return best, requests


def _without_consolidated(fs: Any, url: str) -> None:
    """Drop the consolidated metadata from the root's ``zarr.json``: what a reader without it sees."""
    key = url.removeprefix("s3://") + "/zarr.json"
    meta = json.loads(fs.cat_file(key))
    meta.pop("consolidated_metadata", None)
    fs.pipe_file(key, json.dumps(meta).encode())


def _objects(fs: Any, url: str, *, activations: bool = False) -> int:
    """Objects of the store; with ``activations``, only those of hidden-state chunks (or shards)."""
    keys = fs.find(url.removeprefix("s3://"))
    if activations:
        keys = [key for key in keys if "/c/" in key and key.split("/c/")[0].rsplit("/", 1)[-1] in ACTIVATIONS]
    return len(keys)


def wide_checkpoints(steps: int = 2, n_layer: int = 2) -> list[Any]:
    """BLOOM-560m's width (hidden 1024, 16 heads), ``n_layer`` blocks, random weights (a seed per
    step), with the toy's tokenizer: chunks of the size real extractions write."""
    import torch
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    from xalign.extract import Checkpoint, from_directory

    _, toy = from_directory(toy_checkpoints())
    tokenizer = AutoTokenizer.from_pretrained(toy[0].source)
    out = []
    for step in range(steps):
        path = scratch() / "wide" / f"step_{step}"
        if not (path / "config.json").exists():
            torch.manual_seed(step)
            config = BloomConfig(vocab_size=len(tokenizer), hidden_size=1024, n_layer=n_layer, n_head=16)
            BloomForCausalLM(config).save_pretrained(path)
            tokenizer.save_pretrained(path)
        out.append(Checkpoint(step=step, source=str(path)))
    return out


def run(quick: bool) -> list[Row]:
    import dask.config

    from xalign.analysis.probing import ProbeParams, run_probe_grid
    from xalign.extract import ExtractConfig, extract_store
    from xalign.store.copy import copy_store
    from xalign.store.location import resolve_location

    sentences = 20 if quick else 60
    out = scratch() / "objectstore"
    out.mkdir(parents=True, exist_ok=True)
    files = [cut(language, sentences, out) for language in ("en", "fr")]
    checkpoints = wide_checkpoints()
    config = ExtractConfig(model_id="560m-wide", chunk_words=256, chunk_sentences=64, batch_size=8)
    sharded = dataclasses.replace(config, shard=True)
    disk = str(out / "disk.zarr")
    label = f"560m-wide (2 blocks), {len(checkpoints)} checkpoints x 2 languages x {sentences} sentences"
    params = ProbeParams(probe="gaussian", k=5, min_count=5)
    rows: list[Row] = []
    with _bucket() as server, dask.config.set({"xalign.storage-options": server.storage_options}):
        fs = server.filesystem()
        chunked, shards = f"s3://{BUCKET}/chunks.zarr", f"s3://{BUCKET}/shards.zarr"
        extract_store(str(out / "warm.zarr"), checkpoints[:1], files, config)  # page cache, imports
        on_disk = _timed(lambda: extract_store(disk, checkpoints, files, config))
        in_bucket = _timed(lambda: extract_store(chunked, checkpoints, files, config))
        in_shards = _timed(lambda: extract_store(shards, checkpoints, files, sharded))
        note = f"the cost of the bucket (loopback SeaweedFS) over a directory; {label}"
        rows += [
            growth_row(
                NAME, "extraction into a bucket vs a directory (CPU)", in_bucket[0], on_disk[0], "s", note
            ),
            growth_row(
                NAME, "extraction into a bucket vs a directory (wall)", in_bucket[1], on_disk[1], "s", note
            ),
            growth_row(
                NAME,
                "extraction into a bucket, sharded vs chunks (wall)",
                in_shards[1],
                in_bucket[1],
                "s",
                "one object per chunk of words holding all 3 hidden states, vs one per state",
            ),
        ]
        grid = {"steps": None, "layers": None}
        probe = {
            where: _timed(lambda where=where: run_probe_grid(where, params=params, **grid))
            for where in (disk, chunked, shards)
        }
        rows += [
            growth_row(
                NAME,
                "probe grid on the bucket vs the directory (wall)",
                probe[chunked][1],
                probe[disk][1],
                "s",
                f"Gaussian k=5, every step, layer and language; CPU {probe[chunked][0]:.2f} "
                f"vs {probe[disk][0]:.2f} s",
            ),
            growth_row(
                NAME,
                "probe grid on the sharded bucket store vs chunks (wall)",
                probe[shards][1],
                probe[chunked][1],
                "s",
                "a ranged read of the shard (and its index) per (step, layer) chunk",
            ),
        ]
        rows += [
            speedup_row(
                NAME,
                f"objects{' of hidden states' if only else ' per store'}, sharded vs chunks",
                _objects(fs, shards, activations=only),
                _objects(fs, chunked, activations=only),
                "objects",
                f"fewer objects with shards{'' if only else ' (labels and metadata are the rest)'}; {label}",
            )
            for only in (True, False)
        ]
        consolidated = _open(resolve_location(chunked))
        plain = f"s3://{BUCKET}/plain.zarr"
        copy_store(chunked, plain)
        _without_consolidated(fs, plain)
        unconsolidated = _open(resolve_location(plain))
        rows += [
            speedup_row(
                NAME,
                "requests to open the bucket's store, consolidated vs not",
                consolidated[1],
                unconsolidated[1],
                "requests",
                "reads, listings and existence checks of open_store, with and without "
                "the consolidated metadata extraction writes once the store is complete",
            ),
            speedup_row(
                NAME,
                "time to open the bucket's store, consolidated vs not",
                consolidated[0],
                unconsolidated[0],
                "s",
                "wall seconds, best of 3, on loopback (each request would add a real bucket's round trip)",
            ),
        ]
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import main

    main(["--only", NAME])
