"""The exceptions xalign raises for problems the user can fix.

The CLI turns every :class:`XalignError` into a one-line message and exit code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class XalignError(Exception):
    """Base of every user-facing xalign error."""


class TreebankError(XalignError, ValueError):
    """A CoNLL-U file that cannot be read; names the file and line at fault."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class SchemaError(XalignError, ValueError):
    """A store schema document that is not well-formed."""


class StoreVersionError(XalignError, ValueError):
    """A store written with a schema version this xalign does not know."""


class StoreNotFoundError(XalignError, FileNotFoundError):
    """No xalign store at the given location."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way in which a store departs from its schema.

    Parameters
    ----------
    path
        The node at fault, e.g. ``languages/en/hidden``.
    message
        What is wrong with it.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class StoreValidationError(XalignError, ValueError):
    """A store that does not follow its schema; carries every violation found."""

    def __init__(self, location: str, violations: list[Violation]) -> None:
        self.location = location
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"{location} is not a valid xalign store ({len(violations)} problem(s)):\n{lines}")


@dataclass(frozen=True, slots=True)
class ChunkFault:
    """One damaged chunk.

    Parameters
    ----------
    array
        The array's path in the store, e.g. ``languages/en/hidden``.
    chunk
        The chunk's index in the array's chunk grid.
    key
        The chunk's key in the store (its file, for a store on disk), e.g.
        ``languages/en/hidden/c/0/1/2/0``.
    region
        What the chunk holds along each dimension, e.g. ``step[0], layer[1], word[256:512]``.
    problem
        What is wrong with it.
    """

    array: str
    chunk: tuple[int, ...]
    key: str
    region: str
    problem: str

    def __str__(self) -> str:
        return f"{self.array}: chunk {self.chunk} [{self.region}] {self.problem} (key {self.key})"


class CorruptChunkError(XalignError, ValueError):
    """Chunks of a store whose bytes are damaged (a failed CRC32C checksum, undecodable data).

    Parameters
    ----------
    location
        The store.
    faults
        Each damaged chunk: its array, chunk index and what is wrong
        (:class:`ChunkFault`).
    context
        What was being read, e.g. ``probing step 1000, layer 12, fr``.
    """

    def __init__(self, location: str, faults: Sequence[ChunkFault], context: str = "") -> None:
        self.location = location
        self.faults = tuple(faults)
        self.context = context
        lines = "\n".join(f"  - {fault}" for fault in self.faults)
        while_ = f" (while {context})" if context else ""
        super().__init__(
            f"{location}: {len(self.faults)} corrupt chunk(s){while_}:\n{lines}\n"
            f"The bytes on disk are damaged. Restore the store from a copy, or extract it again; "
            f"`xalign validate --checksums {location}` lists every damaged chunk."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable with its fields, so that it crosses from Dask workers intact.
        return (type(self), (self.location, self.faults, self.context))
