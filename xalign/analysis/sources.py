"""Which language an analysis starts from, which transfer a correlation reads, and which layer a
headline reports.

Transfer and similarity start from one language (the source, the reference): English where
the store has it, as in the reference, else the first language; :func:`describe_choice` says
which in one line. A correlation reads built-in transfer (``analyses/transfer/<name>``) or
one task of imported scores (``analyses/transfer_scores/<name>``): a :class:`TransferSource`.
A headline (the demo's, the report's scatter plots) reads one layer fixed before looking at any
result: the one asked for, else the middle stored layer (:func:`headline_layer`), never the
layer that happens to look best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import xarray as xr

from xalign import dims
from xalign.analysis.registry import open_stored
from xalign.store.layout import ANALYSES_GROUP
from xalign.store.outputs import ResultsError, output_names
from xalign.store.store import Store

__all__ = [
    "PREFERRED_SOURCE",
    "PROBE_TRANSFER_WARNING",
    "TransferSource",
    "choose_source",
    "default_transfer",
    "describe_choice",
    "headline_layer",
    "load_transfer",
    "parse_transfer",
]


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


PROBE_TRANSFER_WARNING = (
    "probe transfer reads the same hidden states as the overlap, so part of any correlation with it "
    "is built in: it is not an independent test (use xalign finetune or imported scores)"
)
"""Said wherever a correlation uses probe transfer."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferSource:
    """Which transfer to correlate with: probe transfer, fine-tuned transfer, or one task of
    imported scores."""

    name: str
    task: str | None = None
    """The task of imported scores; None for transfer measured by xalign."""
    kind: str = "transfer"
    """``transfer`` (probe transfer, from the stored hidden states) or ``finetune``; imported
    scores (a ``task``) are ``transfer_scores`` whatever this says."""

    @property
    def analysis(self) -> str:
        """The analysis kind it is stored as."""
        return "transfer_scores" if self.task else self.kind

    @property
    def independent(self) -> bool:
        """Whether it is measured apart from the hidden states the overlap reads."""
        return self.analysis != "transfer"

    def describe(self) -> str:
        if self.task:
            return f"transfer_scores/{self.name}:{self.task}"
        return f"{self.kind}/{self.name}"

    def label(self) -> str:
        """What it measures, in words."""
        if self.task:
            return f"imported {self.task} scores ({self.name})"
        if self.kind == "finetune":
            return f"fine-tuned UPOS transfer ({self.name})"
        return f"probe transfer ({self.name}; same representations as the overlap, not an independent test)"


def parse_transfer(store: Store, text: str) -> TransferSource:
    """``finetune/NAME``, ``transfer/NAME`` (probe transfer), ``NAME:TASK`` (imported scores), or a
    bare NAME: the fine-tuned transfer of that name if there is one, else the probe transfer."""
    kind, slash, name = text.partition("/")
    if slash:
        if kind == "transfer_scores":
            name, _, task = name.partition(":")
            return TransferSource(name=name, task=task or None)
        if kind not in ("transfer", "finetune"):
            raise ResultsError(f"transfer {text!r}: expected finetune/NAME, transfer/NAME or NAME:TASK")
        return TransferSource(name=name, kind=kind)
    name, _, task = text.partition(":")
    if task:
        return TransferSource(name=name, task=task)
    return TransferSource(name=name, kind="finetune" if name in _names(store, "finetune") else "transfer")


def default_transfer(store: Store) -> TransferSource:
    """The transfer a correlation uses when none is named: the first fine-tuned transfer, else
    the first task of the first imported scores; never probe transfer.

    Raises
    ------
    ResultsError
        If the store has neither.
    """
    for name in _names(store, "finetune"):
        return TransferSource(name=name, kind="finetune")
    for name in _names(store, "transfer_scores"):
        tasks = [str(t) for t in open_stored(store, "transfer_scores", name)[dims.TASK].values]
        if tasks:
            return TransferSource(name=name, task=tasks[0])
    raise ResultsError(
        "no independent transfer to correlate with: run xalign finetune, or import scores with "
        "xalign transfer --scores FILE; probe transfer is used only when asked (--transfer "
        "transfer/linear), since it reads the same hidden states as the overlap"
    )


def _names(store: Store, kind: str) -> list[str]:
    return output_names(store.location, f"{ANALYSES_GROUP}/{kind}")


def load_transfer(store: Store, source: TransferSource) -> xr.DataArray:
    """The transfer array of ``source``: accuracy (measured by xalign) or one task's scores
    (imported)."""
    if source.task is None:
        return open_stored(store, source.kind, source.name)["accuracy"]
    scores = open_stored(store, "transfer_scores", source.name)["score"]
    tasks = [str(t) for t in scores[dims.TASK].values]
    if source.task not in tasks:
        raise ResultsError(
            f"transfer_scores/{source.name} has no task {source.task!r}; it has {', '.join(tasks)}"
        )
    return scores.sel({dims.TASK: source.task}, drop=True)


def headline_layer(layers: Sequence[int], layer: int | None = None) -> tuple[int, str]:
    """The layer a headline reports, fixed before looking, and how it was chosen.

    ``layer`` if given (it must be stored); otherwise the middle stored layer,
    ``layers[len(layers) // 2]`` (hidden-state index: layer 0 is the embeddings; the paper's
    layer L is index L - 1 there). Middle layers are where multilingual models are most often
    reported to align; the rule depends on the store's layers alone, never on a result.

    Examples
    --------
    >>> headline_layer([0, 1, 2, 3, 4])
    (2, 'the middle stored layer, fixed before looking; choose another with --layer')

    Raises
    ------
    ResultsError
        If ``layer`` is not stored, or there are no layers.
    """
    layers = [int(v) for v in layers]
    if not layers:
        raise ResultsError("no layers to report")
    if layer is not None:
        if layer not in layers:
            raise ResultsError(f"layer {layer} is not stored; the store has {', '.join(map(str, layers))}")
        return layer, "as asked"
    return layers[
        len(layers) // 2
    ], "the middle stored layer, fixed before looking; choose another with --layer"
