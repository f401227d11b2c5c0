"""Which language an analysis starts from, and which transfer a correlation reads.

Transfer and similarity start from one language (the source, the reference): English where
the store has it, as in the reference, else the first language; :func:`describe_choice` says
which in one line. A correlation reads built-in transfer (``analyses/transfer/<name>``) or
one task of imported scores (``analyses/transfer_scores/<name>``): a :class:`TransferSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import xarray as xr

from xalign import dims
from xalign.analysis.registry import open_stored
from xalign.store.outputs import ResultsError
from xalign.store.store import Store

__all__ = ["PREFERRED_SOURCE", "TransferSource", "choose_source", "describe_choice", "load_transfer"]


PREFERRED_SOURCE = "en"
"""The source language when none is given and the store has it (the reference's)."""


def choose_source(languages: Sequence[str], source: str | None, *, what: str = "source") -> tuple[str, bool]:
    """The language transfer (or similarity) starts from, and whether it was chosen by default.

    ``source`` if given (it must be one of ``languages``); otherwise English where the store
    has it, else the first of ``languages``.

    Raises
    ------
    ResultsError
        If ``source`` is not among ``languages``, or there are none.
    """
    if not languages:
        raise ResultsError(f"no languages to choose a {what} language from")
    if source is not None:
        if source not in languages:
            raise ResultsError(
                f"the {what} language {source!r} is not in the store; it has {', '.join(languages)}"
            )
        return source, False
    return (PREFERRED_SOURCE if PREFERRED_SOURCE in languages else languages[0]), True


def describe_choice(language: str, defaulted: bool, *, what: str = "source", option: str = "--source") -> str:
    """One line saying which language an analysis starts from, and how it was chosen."""
    if not defaulted:
        return f"{what} language: {language}"
    why = "the default" if language == PREFERRED_SOURCE else f"the store has no {PREFERRED_SOURCE}"
    return f"{what} language: {language} ({why}; choose another with {option})"


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferSource:
    """Which transfer to correlate with: a built-in analysis, or one task of imported scores."""

    name: str
    task: str | None = None
    """The task of imported scores; None for built-in transfer."""

    def describe(self) -> str:
        return f"transfer_scores/{self.name}:{self.task}" if self.task else f"transfer/{self.name}"


def load_transfer(store: Store, source: TransferSource) -> xr.DataArray:
    """The transfer array of ``source``: accuracy (built-in) or one task's scores (imported)."""
    if source.task is None:
        return open_stored(store, "transfer", source.name)["accuracy"]
    scores = open_stored(store, "transfer_scores", source.name)["score"]
    tasks = [str(t) for t in scores[dims.TASK].values]
    if source.task not in tasks:
        raise ResultsError(
            f"transfer_scores/{source.name} has no task {source.task!r}; it has {', '.join(tasks)}"
        )
    return scores.sel({dims.TASK: source.task}, drop=True)
