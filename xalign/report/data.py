"""What a report shows, as plain data: gathered by :mod:`xalign.report.collect`, drawn by
:mod:`xalign.report.figures` and laid out by :mod:`xalign.report.page`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from xalign.analysis.stats import Correlation

__all__ = ["CorrelationView", "ReportData"]


@dataclass(frozen=True, kw_only=True)
class CorrelationView:
    """One correlation to show: its cells as points, and its statistics.

    Attributes
    ----------
    title
        What is correlated, e.g. "Overlap with en vs linear transfer from en (Number, layer 2)".
    x_label, y_label
        Axis labels, with units.
    x, y
        One value per cell.
    point_step
        The step of each cell.
    point_language
        The language of each cell (str).
    flagged
        Whether the checkpoint of each cell is flagged (bool).
    stats
        ``"pearson"`` and ``"spearman"`` statistics of the cells
        (:class:`xalign.analysis.stats.Correlation`).
    """

    title: str
    x_label: str
    y_label: str
    x: np.ndarray
    y: np.ndarray
    point_step: np.ndarray
    point_language: np.ndarray
    flagged: np.ndarray
    stats: Mapping[str, Correlation]


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything the report shows; the optional parts are skipped when ``None`` / empty.

    Attributes
    ----------
    title
        The report's title, e.g. the store's name.
    model
        The model id the store was extracted from.
    health
        Checkpoint health: ``heldout_loss`` (step, language), ``flagged``, ``reason`` ('' when
        fine) and ``duplicate_of`` (-1 when none) over step.
    overlap
        :func:`xalign.analysis.overlap.overlap` output, in memory,
        dims (step, layer, language, language_other, attribute).
    summary
        :func:`xalign.analysis.overlap.summarize` output, dims (step, layer).
    similarity
        Parallel-sentence similarity, dims (step, layer, language): ``mean_cosine``,
        ``last_cosine``, ``mean_baseline``, ``last_baseline``; attrs ``reference``.
    correlations
        Overlap-vs-transfer correlations, one scatter each.
    probe_quality
        Per probed cell (step, layer, language, attribute): ``test_mi`` of its k selected
        neurons, ``null_mi`` (its mean under the gate's permutation null) and ``passed``.
    notes
        Extra lines for the page (e.g. what was excluded).
    finetuned
        Fine-tuned transfer ``accuracy`` and its majority-tag ``baseline`` (step, language =
        source, language_other = target) of the stored ``xalign finetune`` analysis of the default
        name, else the first; None without one.
    layer
        The headline layer (fixed before looking) of the per-attribute and per-step figures and
        the correlations; None without an overlap.
    departures
        Each stored setting that differs from the reference procedure's
        (:func:`xalign.reference.departures`); what xalign always does differently is added on
        the page (:data:`xalign.reference.ALWAYS`).
    """

    title: str
    model: str
    health: xr.Dataset
    overlap: xr.Dataset | None
    summary: xr.Dataset | None
    similarity: xr.Dataset | None
    correlations: Sequence[CorrelationView] = ()
    notes: Sequence[str] = ()
    probe_quality: xr.Dataset | None = None
    finetuned: xr.Dataset | None = None
    layer: int | None = None
    departures: Sequence[str] = ()
