"""The report of several models side by side (``xalign compare``): figures and one page.

Reads the Dataset of :func:`xalign.analysis.compare.compare_stores` (dim ``model``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from xalign import dims
from xalign.analysis.compare import MODEL
from xalign.report import figures
from xalign.report.markup import document as _page
from xalign.report.markup import escape as _e
from xalign.report.markup import table as _table

__all__ = ["comparison_figure", "correlation_figure", "write_comparison"]


def _steps_of(values: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(np.asarray(values.values, dtype=np.float64))
    return np.asarray(values[dims.STEP].values)[finite], np.asarray(values.values, dtype=np.float64)[finite]


def comparison_figure(comparison: xr.Dataset) -> Figure | None:
    """Four panels over training steps, one line per model: overlap as a multiple of chance, as a
    fraction of the chance-to-ceiling range, the share of probed cells that passed the gate, and
    the held-out loss."""
    if comparison.sizes.get(MODEL, 0) == 0:
        return None
    panels = [
        ("multiple_of_chance", "mean overlap / chance", 1.0, "chance"),
        ("fraction_of_ceiling", "fraction of chance-to-ceiling range", 0.0, "chance"),
        ("passed_share", "probed cells that passed the gate", None, ""),
        ("heldout_loss", "held-out loss (nats, mean over languages)", None, ""),
    ]
    data = comparison.assign(
        passed_share=comparison["n_passed"] / comparison["n_probed"].where(comparison["n_probed"] > 0)
    )
    figure = Figure(figsize=(11, 7.5), dpi=figures.DPI, layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    colors = figures._colors(comparison.sizes[MODEL], "plasma")
    drawn = False
    handles: list[Any] = []
    for ax, (name, label, reference, reference_label) in zip(axes, panels, strict=True):
        lines = []
        for model, color in zip(comparison[MODEL].values, colors, strict=True):
            steps, values = _steps_of(data[name].sel({MODEL: model}).sortby(dims.STEP))
            if len(steps):
                layer = int(comparison["layer"].sel({MODEL: model}))
                (line,) = ax.plot(
                    steps, values, marker="o", markersize=3.5, color=color, label=f"{model} (layer {layer})"
                )
                lines.append(line)
        if not lines:
            ax.text(0.5, 0.5, "no value in any model", ha="center", va="center", transform=ax.transAxes)
        if len(lines) > len(handles):
            handles = lines
        drawn = drawn or bool(lines)
        if reference is not None:
            ax.axhline(reference, color="0.35", linestyle="--", linewidth=1.1, label=reference_label)
        if name == "passed_share":
            ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(label)
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
    if not drawn:
        return None
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    figure.suptitle("Models side by side, each at its headline layer (the middle stored one)", fontsize=11)
    return figure


def correlation_figure(comparison: xr.Dataset) -> Figure | None:
    """Pearson r of overlap with transfer per model, with its cluster-bootstrap 95% interval."""
    r = np.asarray(comparison["r"].values, dtype=np.float64)
    if not np.isfinite(r).any():
        return None
    models = [str(m) for m in comparison[MODEL].values]
    low = np.asarray(comparison["ci_low"].values, dtype=np.float64)
    high = np.asarray(comparison["ci_high"].values, dtype=np.float64)
    figure = Figure(figsize=(6.5, 1.2 + 0.5 * len(models)), dpi=figures.DPI, layout="constrained")
    ax = figure.subplots()
    y = np.arange(len(models))
    ax.errorbar(r, y, xerr=[r - low, high - r], fmt="o", color="#1f77b4", capsize=4)
    ax.axvline(0, color="0.35", linestyle="--", linewidth=1.1)
    ax.set_yticks(y, models)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Pearson r, overlap vs transfer (95% interval)")
    return figure


def write_comparison(comparison: xr.Dataset, out: Path) -> list[Path]:
    """Write the figures (PNG and SVG) and ``index.html`` of ``comparison`` into ``out``."""
    from xalign import __version__

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    body = [
        "<h1>Models compared</h1>",
        f'<p class="meta">xalign {_e(__version__)} · overlap analysis '
        f"<code>{_e(comparison.attrs.get('overlap', ''))}</code></p>",
        _summary_table(comparison),
    ]
    for name, make, caption in (
        (
            "comparison.png",
            comparison_figure,
            "Over training, per model at its headline layer: mean overlap as a multiple of chance (k/d "
            "differs between models), as a fraction of the chance-to-ceiling range, the share of probed "
            "cells whose probe beat its permutation null, and the held-out loss.",
        ),
        (
            "correlation.png",
            correlation_figure,
            "Correlation of overlap with transfer per model (the transfer each model's stored "
            "correlation used is in the table), with its cluster-bootstrap 95% interval.",
        ),
    ):
        figure = make(comparison)
        if figure is None:
            body.append(f'<p class="skip">{_e(caption.split(".")[0])}: nothing to plot.</p>')
            continue
        written.append(figures.save(figure, out / name))
        alt = _e(caption.split(":")[0])
        body.append(f'<figure><img src="{name}" alt="{alt}"><figcaption>{_e(caption)}</figcaption></figure>')
    index = out / "index.html"
    index.write_text(_page("Models compared", body), encoding="utf-8")
    written.append(index)
    return written


def _number(value: float, digits: int = 2) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def _summary_table(comparison: xr.Dataset) -> str:
    rows = []
    for model in comparison[MODEL].values:
        at = comparison.sel({MODEL: model})
        mean = at["multiple_of_chance"].sortby(dims.STEP)
        finite = np.flatnonzero(np.isfinite(np.asarray(mean.values, dtype=np.float64)))
        last = int(mean[dims.STEP].values[finite[-1]]) if len(finite) else None
        at_last = at.sel({dims.STEP: last}) if last is not None else None
        rows.append(
            [
                str(model),
                str(int(at["n_neurons"])),
                str(int(at["layer"])),
                _number(float(at["chance"]), 3),
                "–" if at_last is None else str(last),
                "–" if at_last is None else _number(float(at_last["multiple_of_chance"])) + "×",
                "–" if at_last is None else _number(float(at_last["fraction_of_ceiling"])),
                "–" if at_last is None else f"{_count(at_last['n_passed'])}/{_count(at_last['n_probed'])}",
                f"{_number(float(at['r']))} [{_number(float(at['ci_low']))}, {_number(float(at['ci_high']))}]"
                f" over {int(at['n_cells'])} cells",
                str(at["correlation_transfer"].values) or "none stored",
            ]
        )
    header = [
        "model",
        "neurons",
        "layer",
        "chance",
        "last step",
        "overlap × chance",
        "fraction of ceiling",
        "cells passed",
        "Pearson r [95%]",
        "transfer",
    ]
    return _table(header, rows, caption="At each model's last step with an overlap, at its headline layer.")


def _count(value: xr.DataArray) -> str:
    number = float(value)
    return "–" if not math.isfinite(number) else str(int(number))
