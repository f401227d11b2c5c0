"""Fill chunk buffers and write whole chunks from a background thread.

A :class:`ChunkSink` collects the values of one step for a set of arrays that share a
chunking and done flags (e.g. ``sentence_mean``, ``sentence_last`` and ``sentence_loss``).
Only chunks not yet done take values; a chunk is handed to the :class:`ChunkWriter` as soon
as its last item arrives, then its buffer is freed. The writer compresses and writes while
the next forward pass runs, and sets the chunk's done flag only after its data is written,
so a kill loses at most the chunks in flight, and a rerun redoes exactly those.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from xalign.errors import XalignError

__all__ = ["ChunkSink", "ChunkWriter", "ExtractionError", "disk_full_error", "write_errors"]

logger = logging.getLogger(__name__)

_FLOAT16_MAX = float(np.finfo(np.float16).max)


class ExtractionError(XalignError, RuntimeError):
    """Extraction cannot go on (values out of range, disk full, store unwritable ...)."""


class ChunkWriter:
    """One background thread that runs writes in order; at most ``depth`` wait in its queue.

    The bounded queue is what bounds memory: the forward pass blocks when the writer lags.
    An error in the thread is raised in the caller at the next :meth:`submit` or :meth:`close`.
    """

    def __init__(self, depth: int = 2) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.bytes_written = 0
        self._thread = threading.Thread(target=self._run, name="xalign-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # handed to the caller, who decides
                    self._error = exc

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        self._queue.put(job)

    def close(self) -> None:
        """Wait for every submitted write; raise the first error any of them met."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is None:
            return
        error = self._error
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise disk_full_error("the store", error) from error
        if isinstance(error, XalignError):
            raise error
        raise ExtractionError(f"writing the store failed: {error}") from error


DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""The errnos of a full disk (or an exhausted quota)."""


def disk_full_error(what: str, error: OSError) -> ExtractionError:
    """The clear error for a full disk met while writing ``what``."""
    return ExtractionError(
        f"disk full while writing {what}: out of disk space ({error.strerror or error}); free some space "
        "and rerun the same command to resume: every chunk finished so far is kept"
    )


@contextlib.contextmanager
def write_errors(array: zarr.Array[Any], what: str) -> Iterator[None]:
    """Turn an OSError met writing ``array`` into an ExtractionError naming it and ``what``."""
    try:
        yield
    except OSError as error:
        where = f"{_array_location(array)} ({what})"
        if error.errno in DISK_FULL:
            raise disk_full_error(where, error) from error
        raise ExtractionError(f"cannot write {where}: {error.strerror or error}") from error


def _array_location(array: zarr.Array[Any]) -> str:
    root = getattr(array.store, "root", None)
    return str(Path(root) / array.path) if isinstance(root, str | Path) else array.path


class ChunkSink:
    """Buffers for the not-done chunks of some arrays at one step.

    Parameters
    ----------
    arrays
        Name -> Zarr array, each ``(step, layer, item, neuron)`` or ``(step, item)``.
    done
        The ``(step, chunk)`` done flags these arrays share.
    step_index
        Position along ``step`` this sink writes.
    size, chunk
        Items along the item axis, and items per chunk.
    check_float16
        Refuse values beyond the float16 range instead of storing inf.
    """

    def __init__(
        self,
        *,
        arrays: Mapping[str, zarr.Array[Any]],
        done: zarr.Array[Any],
        step_index: int,
        size: int,
        chunk: int,
        writer: ChunkWriter,
    ) -> None:
        # Every chunk is written whole, once: zarr need not test it against the fill value
        # first (with NaN fill, a full pass over the chunk: the writer's main cost).
        self.arrays = {
            name: array.with_config({"write_empty_chunks": True}) for name, array in arrays.items()
        }
        self.done_array = done
        self.step_index = step_index
        self.size = size
        self.chunk = chunk
        self.writer = writer
        self.done = np.asarray(done[step_index, :], dtype=bool).copy()
        self._buffers: dict[int, dict[str, np.ndarray]] = {}
        self._filled: dict[int, int] = {}

    def chunk_length(self, index: int) -> int:
        return min(self.chunk, self.size - index * self.chunk)

    def put(self, start: int, values: Mapping[str, np.ndarray]) -> None:
        """Items ``start, start+1, ...`` of every array; the item axis is the one before last
        for activations ``(layer, item, neuron)``, the only one for ``(item,)``."""
        counts = {_items(value) for value in values.values()}
        if len(counts) != 1:
            raise ValueError(f"arrays of one sink must have the same items, got {counts}")
        count = counts.pop()
        if count == 0:
            return
        for name, value in values.items():
            check_range(value, self.arrays[name].dtype, name)
        stop = start + count
        for index in range(start // self.chunk, (stop - 1) // self.chunk + 1):
            if self.done[index]:
                continue
            lo, hi = max(start, index * self.chunk), min(stop, (index + 1) * self.chunk)
            buffers = self._buffers.get(index)
            if buffers is None:
                buffers = self._buffers[index] = {name: self._new_buffer(name, index) for name in self.arrays}
                self._filled[index] = 0
            for name, value in values.items():
                target, source = buffers[name], value
                a, b = lo - index * self.chunk, hi - index * self.chunk
                if target.ndim == 1:
                    target[a:b] = source[lo - start : hi - start]
                else:
                    target[:, a:b] = source[:, lo - start : hi - start]
            self._filled[index] += hi - lo
            if self._filled[index] == self.chunk_length(index):
                self._flush(index)

    @property
    def pending(self) -> int:
        """Chunks with a buffer that is not yet full."""
        return len(self._buffers)

    def _new_buffer(self, name: str, index: int) -> np.ndarray:
        array = self.arrays[name]
        length = self.chunk_length(index)
        shape = (length,) if array.ndim == 2 else (array.shape[1], length, array.shape[3])
        return np.full(shape, np.nan, dtype=array.dtype)

    def _flush(self, index: int) -> None:
        buffers = self._buffers.pop(index)
        del self._filled[index]
        lo, hi = index * self.chunk, index * self.chunk + self.chunk_length(index)
        step = self.step_index

        def write() -> None:
            for name, buffer in buffers.items():
                array = self.arrays[name]
                with write_errors(array, f"items {lo}..{hi - 1} at step index {step}"):
                    if array.ndim == 2:
                        array[step, lo:hi] = buffer
                    else:
                        array[step, :, lo:hi, :] = buffer
                self.writer.bytes_written += buffer.nbytes
            # The flag last: a chunk is done only once all of its data is on disk (a failed
            # write above raises before it, so the chunk stays to do).
            with write_errors(self.done_array, f"the done flag of chunk {index} at step index {step}"):
                self.done_array[step, index] = True

        self.done[index] = True
        self.writer.submit(write)


def _items(value: np.ndarray) -> int:
    return int(value.shape[0] if value.ndim == 1 else value.shape[1])


def check_range(values: np.ndarray, dtype: np.dtype[Any], what: str) -> None:
    """Refuse values that the stored dtype cannot hold (float16 overflows to inf)."""
    if dtype == np.float16 and values.size:
        # Two reductions over the values and no temporary (``nanmax(abs(values))`` makes one):
        # fmax and fmin skip NaN as nanmax does, and an infinite value is out of range too.
        high, low = float(np.fmax.reduce(values, axis=None)), float(np.fmin.reduce(values, axis=None))
        peak = max(abs(high), abs(low))  # NaN only if every value is NaN: then in range
        if peak > _FLOAT16_MAX:
            raise ExtractionError(
                f"{what}: a value of magnitude {peak:.4g} is beyond the float16 range "
                f"({_FLOAT16_MAX:g}); rerun with --dtype float32"
            )
