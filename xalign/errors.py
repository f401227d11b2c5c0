"""The exceptions xalign raises for problems the user can fix.

The CLI turns every :class:`XalignError` into a one-line message and exit code 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
