"""Find damaged chunks: read them back through their codecs, CRC32C checksum included.

Activation chunks carry a CRC32C checksum (see :func:`xalign.store.layout.encodings`), so a
flipped or truncated byte makes Zarr refuse the chunk, with a message that names neither
the array nor the chunk. This module finds which chunks they are: :func:`find_corrupt_chunks`
reads every chunk of a store (``xalign validate --checksums``) and :func:`corrupt_chunk_error`
turns a failed read of one region into a :class:`~xalign.errors.CorruptChunkError` that
names each damaged chunk.

Chunks are read in batches of whole chunks (at most :data:`BATCH_BYTES` decoded); a batch
that fails is split in halves until the failing chunks stand alone, so a healthy store is
read in few large reads, and each damaged chunk costs a handful more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import zarr

from xalign.errors import ChunkFault, CorruptChunkError
from xalign.store.location import StoreLocation, describe_location
from xalign.store.validate import open_root

__all__ = ["BATCH_BYTES", "ChunkFault", "corrupt_chunk_error", "find_corrupt_chunks", "scan_array"]

BATCH_BYTES = 64 * 2**20
"""Decoded bytes read at once while scanning."""

_DECODE_ERRORS = (ValueError, RuntimeError, TypeError)
"""What Zarr and numcodecs raise for bytes they cannot decode (CRC32C: ValueError, Blosc and
Zstd: RuntimeError); an OSError (unreadable file, permissions) is not corruption and is raised."""


Region = tuple[range, ...]
"""A box of chunks: a range of chunk indices along each dimension."""


def find_corrupt_chunks(
    location: StoreLocation, *, on_array: Callable[[str, int], None] | None = None
) -> list[ChunkFault]:
    """Read every chunk of every array of the store; return each one that fails to decode.

    Chunks never written (an unfinished extraction) are not faults.

    Parameters
    ----------
    on_array
        Called before each array is read with its path and its number of chunks.

    Raises
    ------
    StoreNotFoundError
        If there is no store at ``location``.
    """
    root = open_root(location)
    faults: list[ChunkFault] = []
    arrays = sorted(
        (path, node) for path, node in root.members(max_depth=None) if isinstance(node, zarr.Array)
    )
    for path, array in arrays:
        if on_array is not None:
            on_array(path, math.prod(_grid(array)))
        faults.extend(scan_array(array, path))
    return faults


def scan_array(
    array: zarr.Array[Any], path: str, select: Mapping[int, int] | None = None
) -> Iterator[ChunkFault]:
    """The damaged chunks of ``array`` (at ``path`` in its store).

    Parameters
    ----------
    select
        Axis -> element index: scan only the chunks holding that index along those axes
        (e.g. ``{0: step_index, 1: layer_index}`` for one slab of activations).
    """
    grid, chunks = _grid(array), _chunk_shape(array)
    box = [range(n) for n in grid]
    for axis, index in (select or {}).items():
        box[axis] = range(index // chunks[axis], index // chunks[axis] + 1)
    yield from _scan(array, path, tuple(box))


def corrupt_chunk_error(
    location: StoreLocation,
    array_path: str,
    error: BaseException,
    *,
    select: Mapping[int, int] | None = None,
    context: str = "",
) -> CorruptChunkError | None:
    """After ``error`` met reading (part of) an array: the error naming its damaged chunks.

    Scans the chunks of ``array_path`` in the ``select``-ed region (see :func:`scan_array`).
    Returns None when ``error`` is not a decoding error, or every chunk there reads well
    (the error came from elsewhere), so that the caller re-raises the original error.
    """
    if not isinstance(error, _DECODE_ERRORS):
        return None
    try:
        array = zarr.open_array(location, path=array_path, mode="r")
    except (FileNotFoundError, zarr.errors.ArrayNotFoundError):
        return None
    faults = list(scan_array(array, array_path, select))
    if not faults:
        return None
    return CorruptChunkError(describe_location(location), faults, context)


def _grid(array: zarr.Array[Any]) -> tuple[int, ...]:
    return tuple(math.ceil(n / c) if n else 0 for n, c in zip(array.shape, _chunk_shape(array), strict=True))


def _chunk_shape(array: zarr.Array[Any]) -> tuple[int, ...]:
    """The stored unit: the shard when the array is sharded, the chunk otherwise."""
    return tuple(array.shards or array.chunks)


def _scan(array: zarr.Array[Any], path: str, box: Region) -> Iterator[ChunkFault]:
    if any(len(r) == 0 for r in box):
        return
    chunks = _chunk_shape(array)
    size = math.prod(len(r) * c for r, c in zip(box, chunks, strict=True)) * array.dtype.itemsize
    if size <= BATCH_BYTES or all(len(r) == 1 for r in box):
        error = _read(array, box)
        if error is None:
            return
        if all(len(r) == 1 for r in box):
            yield _fault(array, path, tuple(r[0] for r in box), error)
            return
    # Too big to read at once, or a read that failed: halve along the longest side.
    axis = max(range(len(box)), key=lambda i: len(box[i]))
    middle = len(box[axis]) // 2
    for part in (box[axis][:middle], box[axis][middle:]):
        yield from _scan(array, path, (*box[:axis], part, *box[axis + 1 :]))


def _read(array: zarr.Array[Any], box: Region) -> BaseException | None:
    chunks = _chunk_shape(array)
    selection = tuple(
        slice(r.start * c, min(r.stop * c, n)) for r, c, n in zip(box, chunks, array.shape, strict=True)
    )
    try:
        array[selection]
    except _DECODE_ERRORS as error:
        return error
    return None


def _fault(array: zarr.Array[Any], path: str, chunk: tuple[int, ...], error: BaseException) -> ChunkFault:
    names = tuple(getattr(array.metadata, "dimension_names", None) or ()) or tuple(
        f"axis{i}" for i in range(array.ndim)
    )
    parts = []
    for name, index, size, length in zip(names, chunk, _chunk_shape(array), array.shape, strict=True):
        start, stop = index * size, min((index + 1) * size, length)
        parts.append(f"{name}[{start}]" if stop - start == 1 else f"{name}[{start}:{stop}]")
    message = str(error)
    problem = (
        "fails its CRC32C checksum: its bytes on disk are damaged"
        if "checksum" in message.lower()
        else f"cannot be decoded ({type(error).__name__}: {message})"
    )
    key = array.metadata.encode_chunk_key(chunk)
    key = f"{path}/{key}" if path else key
    return ChunkFault(array=path, chunk=chunk, key=key, region=", ".join(parts), problem=problem)
