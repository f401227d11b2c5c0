"""The report of a run: figures (PNG, matplotlib Agg) and a self-contained ``index.html``.

:func:`write_report` takes a :class:`ReportData` (checkpoint health, neuron overlap and its
summary, parallel-sentence similarity, overlap-vs-transfer correlations as
:class:`CorrelationView`) and writes the figures and the page into one folder.
"""

from __future__ import annotations

from xalign.report.data import CorrelationView, ReportData
from xalign.report.page import write_report

__all__ = ["CorrelationView", "ReportData", "write_report"]
