"""The report's figures, one function per figure.

Every function takes the report's data and returns a :class:`matplotlib.figure.Figure`, or
``None`` when there is nothing to draw (the data is missing, empty or has no finite value).
Figures are plain ``Figure`` objects rendered by Agg, never pyplot state, so several threads
may draw at once. Steps are sorted before plotting, and flagged checkpoints are marked: values
at a flagged step are drawn as crosses, off the lines, on a red band.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from xalign import dims

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from xalign.analysis.stats import Correlation
    from xalign.report.data import CorrelationView

__all__ = [
    "DPI",
    "correlation_line",
    "correlation_scatter",
    "finite_mask",
    "finite_mean",
    "flags",
    "format_number",
    "format_p",
    "heatmap_step",
    "heldout_loss",
    "overlap_by_attribute",
    "overlap_heatmaps",
    "overlap_heatmaps_by_step",
    "overlap_vs_step",
    "save",
    "similarity_vs_step",
    "transfer_matrices",
]

DPI = 110
"""Resolution of the saved PNGs."""

_FLAG_COLOR = "#d62728"
_CHANCE_COLOR = "0.35"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")
_ANNOTATE_MAX_LANGUAGES = 8
"""Heatmaps of more languages than this carry no value annotations (they would not be legible)."""


# --------------------------------------------------------------------------------------------
# Formatting shared with the page.


def format_number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or an em dash for a missing / non-finite value."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}f}"


def format_p(value: float | None) -> str:
    """A p-value with two significant digits (scientific when small), or an em dash."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.2g}"


def correlation_line(stat: Correlation | None, symbol: str) -> str:
    """``"r = 0.81 [0.62, 0.90]"``: a coefficient with its confidence interval."""
    if stat is None:
        return f"{symbol} = —"
    interval = f"[{format_number(stat.ci_low, 2)}, {format_number(stat.ci_high, 2)}]"
    return f"{symbol} = {format_number(stat.r, 2)} {interval}"


def _plain(text: str) -> str:
    """``text`` for matplotlib, with ``$`` escaped so that it is never parsed as mathtext."""
    return str(text).replace("$", r"\$")


# --------------------------------------------------------------------------------------------
# Helpers.


def save(figure: Figure, path: Path) -> Path:
    """Render ``figure`` with Agg into the PNG ``path``, and beside it as SVG (vector, for a paper);
    returns ``path``."""
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png", facecolor="white")
    figure.savefig(path.with_suffix(".svg"), format="svg", facecolor="white")
    return path


def flags(health: xr.Dataset | None) -> dict[int, str]:
    """Flagged step -> its reason (``"flagged"`` if none is given), in step order."""
    if health is None or "flagged" not in health or health.sizes.get(dims.STEP, 0) == 0:
        return {}
    ordered = health.sortby(dims.STEP)
    steps = np.asarray(ordered[dims.STEP].values)
    flagged = np.asarray(ordered["flagged"].values).astype(bool)
    reasons = np.asarray(ordered["reason"].values) if "reason" in ordered else np.full(len(steps), "")
    return {int(s): (str(r) or "flagged") for s, f, r in zip(steps, flagged, reasons, strict=True) if f}


def heatmap_step(overlap: xr.Dataset | None, health: xr.Dataset | None) -> tuple[int, bool] | None:
    """The step the heatmaps show and whether it is flagged.

    The last unflagged step with a finite overlap; the last step with one if every such step is
    flagged; ``None`` if there is no finite overlap at all.
    """
    if overlap is None or "overlap" not in overlap or overlap.sizes.get(dims.STEP, 0) == 0:
        return None
    values = overlap["overlap"]
    others = [d for d in values.dims if d != dims.STEP]
    has_data = np.asarray(finite_mask(values).any(others).values).astype(bool)
    steps = np.asarray(values[dims.STEP].values)[has_data]
    if len(steps) == 0:
        return None
    flagged = flags(health)
    healthy = [int(s) for s in steps if int(s) not in flagged]
    if healthy:
        return max(healthy), False
    return int(max(steps)), True


def _finite(values: Any) -> bool:
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).any())


def finite_mask(values: xr.DataArray) -> xr.DataArray:
    """Where ``values`` is finite (an in-memory boolean array of the same dims and coords)."""
    return values.copy(data=np.isfinite(np.asarray(values.values, dtype=np.float64)))


def finite_mean(values: xr.DataArray, over: Sequence[Hashable]) -> xr.DataArray:
    """Mean over the finite values along ``over`` (NaN where there is none), without warnings."""
    over = [d for d in over if d in values.dims]
    if not over:
        return values.astype(np.float64)
    finite = values.astype(np.float64).where(finite_mask(values))
    count = finite.count(over)
    return finite.sum(over, skipna=True) / count.where(count > 0)


def _by_step(values: xr.DataArray) -> xr.DataArray:
    return values.sortby(dims.STEP)


def _per_layer(values: xr.DataArray) -> Iterator[tuple[str, np.ndarray]]:
    """(label, values over step) for each layer of a (step[, layer]) array."""
    if dims.LAYER not in values.dims:
        yield "all layers", np.asarray(values.values, dtype=np.float64)
        return
    for layer in values[dims.LAYER].values:
        label = f"layer {layer}" + (" (embeddings)" if int(layer) == 0 else "")
        yield label, np.asarray(values.sel({dims.LAYER: layer}).values, dtype=np.float64)


def _colors(n: int, cmap: str = "viridis") -> list[Any]:
    """``n`` colors along a sequential colormap, avoiding its palest end."""
    colormap = colormaps[cmap]
    return [colormap(0.9 * i / max(n - 1, 1)) for i in range(n)]


def _language_colors(languages: Sequence[str]) -> dict[str, Any]:
    colormap = colormaps["tab10" if len(languages) <= 10 else "tab20"]
    return {language: colormap(i % colormap.N) for i, language in enumerate(languages)}


def _log_steps(steps: np.ndarray) -> bool:
    """Whether the steps are spread on a log scale (most of them early), as in Pythia's."""
    positive = steps[steps > 0]
    if len(positive) < 3 or positive.max() / positive.min() < 50:
        return False
    return bool(np.mean(steps < 0.1 * steps.max()) > 0.5)


def _step_axis(ax: Axes, steps: np.ndarray, *, label: bool = True) -> None:
    """A step axis: symmetric-log when the checkpoints are log-spaced, linear otherwise."""
    if _log_steps(steps):
        ax.set_xscale("symlog", linthresh=float(steps[steps > 0].min()))
    if label:
        ax.set_xlabel("training step" + (" (log scale)" if _log_steps(steps) else ""))
    ax.grid(True, alpha=0.3)


def _mark_flagged(ax: Axes, steps: Sequence[int], *, numbered: bool = False) -> list[Line2D]:
    """A red band at each flagged step; returns the legend proxy (none if no step is flagged)."""
    for i, step in enumerate(steps):
        ax.axvline(step, color=_FLAG_COLOR, alpha=0.18, linewidth=9, zorder=0)
        if numbered:
            transform = blended_transform_factory(ax.transData, ax.transAxes)
            ax.text(
                step,
                0.98,
                str(i + 1),
                transform=transform,
                ha="center",
                va="top",
                fontsize=8,
                fontweight="bold",
                color=_FLAG_COLOR,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": _FLAG_COLOR},
            )
    if not steps:
        return []
    return [Line2D([], [], color=_FLAG_COLOR, alpha=0.3, linewidth=9, label="flagged checkpoint")]


def _series(
    ax: Axes, steps: np.ndarray, values: np.ndarray, flagged: np.ndarray, **style: Any
) -> Line2D | None:
    """A line over the healthy steps, with the values at flagged steps as crosses of its color."""
    healthy = ~flagged
    (line,) = ax.plot(steps[healthy], values[healthy], marker="o", markersize=3.5, linewidth=1.6, **style)
    if flagged.any():
        ax.plot(
            steps[flagged],
            values[flagged],
            linestyle="none",
            marker="x",
            markersize=7,
            markeredgewidth=1.8,
            color=line.get_color(),
            zorder=4,
        )
    return line


def _flag_cross() -> Line2D:
    return Line2D(
        [],
        [],
        linestyle="none",
        marker="x",
        markersize=7,
        markeredgewidth=1.8,
        color="0.3",
        label="value at a flagged checkpoint",
    )


# --------------------------------------------------------------------------------------------
# 0. Probe quality: each cell's test MI against its permutation null.


def probe_quality(quality: xr.Dataset | None) -> Figure | None:
    """Each probed cell's held-out test MI (its k neurons) against the mean of its permutation
    null, cells that passed the gate in one colour and the others in grey; the diagonal is
    "no better than its null"."""
    if quality is None or "test_mi" not in quality:
        return None
    flat = quality.stack(cell=list(quality["test_mi"].dims))
    x = np.asarray(flat["null_mi"].values, dtype=np.float64)
    y = np.asarray(flat["test_mi"].values, dtype=np.float64)
    passed = np.asarray(flat["passed"].values, dtype=bool)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return None
    figure = Figure(figsize=(6.4, 5.2), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    for chosen, color, label in ((~passed, "0.6", "failed the gate"), (passed, "#1f77b4", "passed the gate")):
        shown = keep & chosen
        ax.scatter(x[shown], y[shown], s=12, color=color, alpha=0.8, label=f"{label} ({int(shown.sum())})")
    low = float(min(x[keep].min(), y[keep].min()))
    high = float(max(x[keep].max(), y[keep].max(), 0.0))
    ax.plot(
        [low, high], [low, high], color=_CHANCE_COLOR, linestyle="--", linewidth=1.1, label="test MI = null"
    )
    ax.axhline(0, color="0.8", linewidth=0.8)
    ax.set_xlabel("mean test MI under the permutation null")
    ax.set_ylabel("test MI of the k selected neurons")
    ax.set_title("Probe quality per (step, layer, language, attribute) cell", fontsize=11)
    ax.legend(fontsize=9, frameon=False)
    return figure


# --------------------------------------------------------------------------------------------
# 1. Mean overlap vs step.


def overlap_vs_step(summary: xr.Dataset | None, health: xr.Dataset | None = None) -> Figure | None:
    """Mean top-k overlap across language pairs vs training step, one line per layer.

    A dashed line marks chance (k/d, the expected overlap of two random k-sets) and dotted
    lines each layer's noise ceiling where the probing run measured it; a right-hand axis reads
    the overlap as a multiple of chance. When ``summary`` has ``significant``, a
    second panel shows the fraction of (pair, attribute) cells significant after Holm.
    """
    if summary is None or "mean_overlap" not in summary or summary.sizes.get(dims.STEP, 0) == 0:
        return None
    ordered = summary.sortby(dims.STEP)
    mean = ordered["mean_overlap"]
    if not _finite(mean.values):
        return None
    steps = np.asarray(ordered[dims.STEP].values)
    flagged_steps = [s for s in flags(health) if s in set(steps.tolist())]
    flagged = np.isin(steps, flagged_steps)
    significant = ordered.get("significant")
    two_panels = significant is not None and _finite(significant.values)

    figure = Figure(figsize=(9.5, 6.6 if two_panels else 4.8), dpi=DPI, layout="constrained")
    if two_panels:
        top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    else:
        top, bottom = figure.subplots(1, 1), None
    layers = list(_per_layer(mean))
    colors = _colors(len(layers))
    handles: list[Any] = []
    for (label, values), color in zip(layers, colors, strict=True):
        line = _series(top, steps, values, flagged, color=color, label=label)
        handles.append(line)
    ceiling = ordered.get("mean_ceiling")
    if ceiling is not None and _finite(ceiling.values):
        for (_, values), color in zip(_per_layer(ceiling), colors, strict=True):
            top.plot(steps, values, color=color, linestyle=":", linewidth=1.2)
        handles.append(
            Line2D(
                [], [], color="0.3", linestyle=":", label="noise ceiling (reproducibility within a language)"
            )
        )
    k = ordered.attrs.get("k")
    n_neurons = ordered.attrs.get("n_neurons")
    chance = float(ordered.attrs.get("chance", math.nan))
    if math.isfinite(chance) and chance > 0:
        how = (
            f"k/d = {k}/{n_neurons} = {chance:.3g}"
            if k is not None and n_neurons is not None
            else f"{chance:.3g}"
        )
        handles.append(
            top.axhline(chance, color=_CHANCE_COLOR, linestyle="--", linewidth=1.3, label=f"chance ({how})")
        )
        secondary = top.secondary_yaxis("right", functions=(lambda y: y / chance, lambda m: m * chance))
        secondary.set_ylabel("multiple of chance")
    top.set_ylim(bottom=0)
    top.set_ylabel("mean overlap (fraction of top-k shared)")
    title = "Cross-lingual neuron overlap over training"
    if k is not None:
        title += f"\ntop-{k} neurons, mean over language pairs and attributes"
    figure.suptitle(title, fontsize=11)
    _step_axis(top, steps, label=bottom is None)
    handles += _mark_flagged(top, flagged_steps)
    if flagged.any():
        handles.append(_flag_cross())

    if bottom is not None and significant is not None:
        for (_, values), color in zip(_per_layer(significant), colors, strict=True):
            _series(bottom, steps, values, flagged, color=color)
        alpha = ordered.attrs.get("alpha", 0.05)
        bottom.set_ylim(-0.03, 1.03)
        bottom.set_ylabel(f"fraction significant\n(Holm p < {alpha})")
        _step_axis(bottom, steps)
        _mark_flagged(bottom, flagged_steps)
    figure.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    return figure


# --------------------------------------------------------------------------------------------
# 2. Language × language heatmaps.


def overlap_heatmaps(overlap: xr.Dataset | None, health: xr.Dataset | None = None) -> Figure | None:
    """Language × language overlap (mean over attributes) at one step, one panel per layer.

    The step is :func:`heatmap_step`'s: the last unflagged checkpoint with data.
    """
    chosen = heatmap_step(overlap, health)
    if overlap is None or chosen is None:
        return None
    step, step_flagged = chosen
    values = finite_mean(overlap["overlap"].sel({dims.STEP: step}), [dims.ATTRIBUTE])
    if dims.LAYER not in values.dims:
        values = values.expand_dims({dims.LAYER: [-1]})
    titles = [f"layer {layer}" if int(layer) >= 0 else "all layers" for layer in values[dims.LAYER].values]
    where = f" at step {step}" + (" (flagged checkpoint)" if step_flagged else "")
    return _heatmap_panels(values.transpose(dims.LAYER, ...), titles, overlap.attrs, where)


def overlap_heatmaps_by_step(
    overlap: xr.Dataset | None, health: xr.Dataset | None = None, *, layer: int | None = None
) -> Figure | None:
    """Language × language overlap (mean over attributes) at one layer, one panel per step.

    ``layer`` is the report's headline layer (fixed before looking); flagged steps say so.
    """
    if overlap is None or "overlap" not in overlap or layer is None or overlap.sizes.get(dims.STEP, 0) == 0:
        return None
    if dims.LAYER in overlap.dims and layer not in set(overlap[dims.LAYER].values.tolist()):
        return None
    values = overlap["overlap"].sortby(dims.STEP)
    if dims.LAYER in values.dims:
        values = values.sel({dims.LAYER: layer})
    values = finite_mean(values, [dims.ATTRIBUTE])
    if not _finite(values.values):
        return None
    flagged = flags(health)
    titles = [
        f"step {int(step)}" + (" (flagged)" if int(step) in flagged else "")
        for step in values[dims.STEP].values
    ]
    return _heatmap_panels(
        values.transpose(dims.STEP, ...), titles, overlap.attrs, f" at layer {layer}, by step"
    )


def _heatmap_panels(
    values: xr.DataArray,
    titles: Sequence[str],
    attrs: Any,
    where: str,
    *,
    bar_label: str = "mean overlap (fraction of top-k shared)",
    heading: str | None = None,
) -> Figure | None:
    """One language × language heatmap per entry of ``values``' first dim, on one colour scale."""
    languages = [str(v) for v in values[dims.LANGUAGE].values]
    others = [str(v) for v in values[dims.LANGUAGE_OTHER].values]
    grid = np.asarray(
        values.transpose(values.dims[0], dims.LANGUAGE, dims.LANGUAGE_OTHER).values, dtype=np.float64
    )
    finite = grid[np.isfinite(grid)]
    chance = float(attrs.get("chance", math.nan))
    vmax = max(float(finite.max()) if finite.size else 0.0, chance if math.isfinite(chance) else 0.0, 1e-6)
    norm = Normalize(vmin=0.0, vmax=vmax)
    colormap = colormaps["viridis"].with_extremes(bad="#e6e6e6")

    n_panels = len(titles)
    n_languages = max(len(languages), len(others))
    annotate = n_languages <= _ANNOTATE_MAX_LANGUAGES
    n_columns = min(n_panels, 4 if n_languages <= 5 or not annotate else 3)
    n_rows = math.ceil(n_panels / n_columns)
    cell = 0.42 if annotate else 0.28
    width = max(2.6, cell * len(others) + 0.9)
    height = max(1.4, cell * len(languages) + 0.9) if len(languages) < len(others) else width
    figure = Figure(
        figsize=(max(width * n_columns + 1.3, 7.5), (height + 0.35) * n_rows + 0.9),
        dpi=DPI,
        layout="constrained",
    )
    axes = np.atleast_1d(figure.subplots(n_rows, n_columns, squeeze=False)).ravel()
    fontsize = 9 if n_languages <= 5 else 8
    image = None
    for index, ax in enumerate(axes):
        if index >= n_panels:
            ax.remove()
            continue
        panel = grid[index]
        image = ax.imshow(np.ma.masked_invalid(panel), cmap=colormap, norm=norm, aspect="equal")
        ax.set_title(titles[index], fontsize=10)
        ax.set_xticks(range(len(others)), others, rotation=45 if len(others) > 4 else 0, fontsize=8)
        ax.set_yticks(range(len(languages)), languages, fontsize=8)
        if index % n_columns == 0:
            ax.set_ylabel("language")
        if index + n_columns >= n_panels:
            ax.set_xlabel("other language")
        if annotate:
            for i in range(panel.shape[0]):
                for j in range(panel.shape[1]):
                    value = panel[i, j]
                    if not math.isfinite(value):
                        continue
                    dark = norm(value) < 0.55
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=fontsize,
                        color="white" if dark else "black",
                    )
    if image is not None:
        bar = figure.colorbar(image, ax=list(axes[:n_panels]), shrink=0.9, aspect=25)
        label = bar_label
        if math.isfinite(chance) and 0 <= chance <= vmax:
            bar.ax.axhline(chance, color=_FLAG_COLOR, linewidth=2.5)
            label += "\nred line: chance"
        bar.set_label(label)
    k = attrs.get("k")
    if heading is not None:
        title = "\n".join(textwrap.wrap(heading, 90))
    else:
        title = f"Overlap of top-{k} neuron sets between languages" if k is not None else "Neuron overlap"
        title += where
        title += "\nmean over attributes" + (f"; chance = {chance:.3g}" if math.isfinite(chance) else "")
    figure.suptitle(title, fontsize=11)
    return figure


def transfer_matrices(finetuned: xr.Dataset | None, health: xr.Dataset | None = None) -> Figure | None:
    """Fine-tuned transfer accuracy, source × target, one panel per checkpoint with results; each
    panel's title gives its baseline (always the source's most frequent tag) over the targets."""
    if finetuned is None or finetuned.sizes.get(dims.STEP, 0) == 0:
        return None
    ordered = finetuned.sortby(dims.STEP)
    finite = np.isfinite(np.asarray(ordered["accuracy"].values, dtype=np.float64))
    keep = finite.reshape(finite.shape[0], -1).any(axis=1)
    if not keep.any():
        return None
    ordered = ordered.isel({dims.STEP: np.flatnonzero(keep)})
    flagged = flags(health)
    titles = []
    for step in ordered[dims.STEP].values:
        baseline = np.asarray(ordered["baseline"].sel({dims.STEP: step}).values, dtype=np.float64)
        baseline = baseline[np.isfinite(baseline)]
        low, high = (f"{baseline.min():.2f}", f"{baseline.max():.2f}") if baseline.size else ("–", "–")
        spread = low if low == high else f"{low}–{high}"
        titles.append(
            f"step {int(step)}" + (" (flagged)" if int(step) in flagged else "") + f"\nmajority tag: {spread}"
        )
    heading = "Zero-shot transfer after fine-tuning for UPOS: accuracy on each target's test sentences"
    panels = ordered["accuracy"].transpose(dims.STEP, dims.LANGUAGE, dims.LANGUAGE_OTHER)
    figure = _heatmap_panels(panels, titles, {}, "", bar_label="UPOS accuracy", heading=heading)
    if figure is not None:
        for ax in figure.axes[: len(titles)]:
            if ax.get_ylabel():
                ax.set_ylabel("source (fine-tuned on)")
            if ax.get_xlabel():
                ax.set_xlabel("target (tested on)")
    return figure


# --------------------------------------------------------------------------------------------
# 2b. Overlap vs step, per attribute.


def overlap_by_attribute(
    overlap: xr.Dataset | None, health: xr.Dataset | None = None, *, layer: int | None = None
) -> Figure | None:
    """Overlap vs step at one layer, one panel per attribute: the mean over language pairs, the
    middle half and the range of the pairs as bands, chance (k/d) and the pairs' mean noise
    ceiling where the probing run measured it."""
    if overlap is None or "overlap" not in overlap or layer is None or overlap.sizes.get(dims.STEP, 0) == 0:
        return None
    if dims.LAYER in overlap.dims and layer not in set(overlap[dims.LAYER].values.tolist()):
        return None
    ordered = overlap.sortby(dims.STEP)
    if dims.LAYER in ordered.dims:
        ordered = ordered.sel({dims.LAYER: layer})
    languages = [str(v) for v in ordered[dims.LANGUAGE].values]
    others = [str(v) for v in ordered[dims.LANGUAGE_OTHER].values]
    upper = np.array([[a < b for b in others] for a in languages])
    attributes = [str(a) for a in ordered[dims.ATTRIBUTE].values]
    steps = np.asarray(ordered[dims.STEP].values)
    pairs = np.asarray(
        ordered["overlap"].transpose(dims.STEP, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER).values,
        dtype=np.float64,
    )[:, :, upper]
    ceiling = None
    if "ceiling" in ordered:
        ceiling = np.asarray(
            ordered["ceiling"]
            .transpose(dims.STEP, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER)
            .values,
            dtype=np.float64,
        )[:, :, upper]
    shown = [i for i in range(len(attributes)) if np.isfinite(pairs[:, i]).any()]
    if not shown:
        return None
    flagged_steps = [s for s in flags(health) if s in set(steps.tolist())]
    flagged = np.isin(steps, flagged_steps)
    chance = float(overlap.attrs.get("chance", math.nan))
    n_columns = min(len(shown), 3)
    n_rows = math.ceil(len(shown) / n_columns)
    figure = Figure(figsize=(3.6 * n_columns + 2.6, 2.9 * n_rows + 0.9), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_columns, squeeze=False, sharey=True)).ravel()
    color = "#1f77b4"
    for index, ax in enumerate(axes):
        if index >= len(shown):
            ax.remove()
            continue
        column = pairs[:, shown[index]]
        counts = np.isfinite(column).sum(axis=1)
        present = counts > 0
        safe = np.where(np.isfinite(column), column, np.nan)
        mean = np.full(len(steps), np.nan)
        low = np.full(len(steps), np.nan)
        high = np.full(len(steps), np.nan)
        q1 = np.full(len(steps), np.nan)
        q3 = np.full(len(steps), np.nan)
        for row in np.flatnonzero(present):
            values = safe[row][np.isfinite(safe[row])]
            mean[row], low[row], high[row] = values.mean(), values.min(), values.max()
            q1[row], q3[row] = np.quantile(values, [0.25, 0.75])
        ax.fill_between(steps, low, high, color=color, alpha=0.12, linewidth=0)
        ax.fill_between(steps, q1, q3, color=color, alpha=0.25, linewidth=0)
        _series(ax, steps, mean, flagged, color=color)
        if ceiling is not None:
            cell = ceiling[:, shown[index]]
            mean_ceiling = np.array(
                [c[np.isfinite(c)].mean() if np.isfinite(c).any() else np.nan for c in cell]
            )
            if np.isfinite(mean_ceiling).any():
                ax.plot(steps, mean_ceiling, color="0.3", linestyle=":", linewidth=1.3)
        if math.isfinite(chance):
            ax.axhline(chance, color=_CHANCE_COLOR, linestyle="--", linewidth=1.2)
        _mark_flagged(ax, flagged_steps)
        pair_counts = sorted({int(c) for c in counts[present]})
        n_pairs = str(pair_counts[0]) if len(pair_counts) == 1 else f"{pair_counts[0]}-{pair_counts[-1]}"
        ax.set_title(f"{attributes[shown[index]]} ({n_pairs} pairs)", fontsize=10)
        _step_axis(ax, steps, label=index + n_columns >= len(shown))
        if index % n_columns == 0:
            ax.set_ylabel("overlap (fraction of top-k)")
        ax.set_ylim(bottom=0)
    handles: list[Any] = [
        Line2D([], [], color=color, marker="o", markersize=3.5, label="mean over language pairs"),
        _band(color, 0.25, "middle half of the pairs"),
        _band(color, 0.12, "range of the pairs"),
        Line2D([], [], color=_CHANCE_COLOR, linestyle="--", label="chance (k/d)"),
    ]
    if ceiling is not None and np.isfinite(ceiling).any():
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="noise ceiling"))
    if flagged.any():
        handles += [*_mark_flagged(axes[0], []), _flag_cross()]
    figure.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    k = overlap.attrs.get("k")
    figure.suptitle(
        f"Overlap of top-{k} neuron sets per attribute over training, layer {layer}"
        if k is not None
        else f"Overlap per attribute over training, layer {layer}",
        fontsize=11,
    )
    return figure


def _band(color: Any, alpha: float, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=alpha, linewidth=0, label=label)


# --------------------------------------------------------------------------------------------
# 3. Overlap vs transfer scatters.


def correlation_scatter(view: CorrelationView) -> Figure | None:
    """One point per cell of ``view``, colored by step, shaped by language; flagged ones hollow red."""
    x = np.asarray(view.x, dtype=np.float64)
    y = np.asarray(view.y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return None
    steps = np.asarray(view.point_step, dtype=np.float64)
    point_languages = np.asarray([str(v) for v in np.asarray(view.point_language).ravel()], dtype=object)
    flagged = np.asarray(view.flagged).astype(bool)
    languages = list(dict.fromkeys(point_languages[finite].tolist()))

    figure = Figure(figsize=(8.2, 6.0), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    step_values = steps[finite]
    low, high = float(np.nanmin(step_values)), float(np.nanmax(step_values))
    if _log_steps(step_values) and low >= 0:
        norm: Normalize = SymLogNorm(linthresh=float(step_values[step_values > 0].min()), vmin=low, vmax=high)
    else:
        norm = Normalize(vmin=low, vmax=high if high > low else low + 1)
    colormap = colormaps["viridis"]
    handles: list[Any] = []
    for i, language in enumerate(languages):
        marker = _MARKERS[i % len(_MARKERS)]
        mine = finite & (point_languages == language)
        healthy = mine & ~flagged
        ax.scatter(
            x[healthy],
            y[healthy],
            c=steps[healthy],
            cmap=colormap,
            norm=norm,
            marker=marker,
            s=42,
            edgecolors="0.15",
            linewidths=0.5,
            alpha=0.9,
            zorder=3,
        )
        sick = mine & flagged
        if sick.any():
            ax.scatter(
                x[sick],
                y[sick],
                marker=marker,
                s=48,
                facecolors="none",
                edgecolors=_FLAG_COLOR,
                linewidths=1.4,
                zorder=4,
            )
        handles.append(
            Line2D([], [], linestyle="none", marker=marker, color="0.4", markersize=7, label=_plain(language))
        )
    if (finite & flagged).any():
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=7,
                markerfacecolor="none",
                markeredgecolor=_FLAG_COLOR,
                markeredgewidth=1.4,
                label="flagged checkpoint",
            )
        )
    if finite.sum() >= 3 and np.ptp(x[finite]) > 0:
        slope, intercept = np.polyfit(x[finite], y[finite], 1)
        xs = np.linspace(x[finite].min(), x[finite].max(), 50)
        (fit,) = ax.plot(xs, slope * xs + intercept, color="0.2", linestyle="--", linewidth=1.3, zorder=5)
        fit.set_label("least-squares fit")
        handles.append(fit)
    mappable = ax.collections[0] if ax.collections else None
    if mappable is not None and high > low:
        bar = figure.colorbar(mappable, ax=ax, pad=0.01, aspect=30)
        bar.set_label("training step")
    ax.set_xlabel(_plain(view.x_label))
    ax.set_ylabel(_plain(view.y_label))
    ax.grid(True, alpha=0.3)
    pearson = view.stats.get("pearson")
    spearman = view.stats.get("spearman")
    n = next((s.n for s in (pearson, spearman) if s is not None), int(finite.sum()))
    confidence = next((s.confidence for s in (pearson, spearman) if s is not None), math.nan)
    level = f"{confidence:.0%} bootstrap CI" if math.isfinite(confidence) else "bootstrap CI"
    ax.set_title(
        f"Pearson {correlation_line(pearson, 'r')}   Spearman {correlation_line(spearman, 'ρ')}\n"
        f"n = {n} cells; brackets: {level}",
        fontsize=10,
    )
    figure.suptitle("\n".join(textwrap.wrap(_plain(view.title), 80)), fontsize=11)
    figure.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False, title="language")
    return figure


# --------------------------------------------------------------------------------------------
# 4. Parallel-sentence similarity vs step.


_POOLINGS = (("mean", "mean-pooled sentence vectors"), ("last", "last-token vectors"))


def similarity_vs_step(similarity: xr.Dataset | None, health: xr.Dataset | None = None) -> Figure | None:
    """Cosine of translation pairs vs step, per language (mean over layers), one panel per pooling.

    The dashed line of the same color is the mismatched-pair baseline of that language.
    """
    if similarity is None or similarity.sizes.get(dims.STEP, 0) == 0:
        return None
    poolings = [(p, title) for p, title in _POOLINGS if f"{p}_cosine" in similarity]
    if not poolings or not any(_finite(similarity[f"{p}_cosine"].values) for p, _ in poolings):
        return None
    ordered = similarity.sortby(dims.STEP)
    steps = np.asarray(ordered[dims.STEP].values)
    flagged_steps = [s for s in flags(health) if s in set(steps.tolist())]
    flagged = np.isin(steps, flagged_steps)
    all_languages = [str(v) for v in ordered[dims.LANGUAGE].values]
    colors = _language_colors(all_languages)
    reference = ordered.attrs.get("reference")

    figure = Figure(figsize=(11.0, 4.6), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(poolings), sharey=True, squeeze=False)).ravel()
    shown: list[str] = []
    for ax, (pooling, title) in zip(axes, poolings, strict=True):
        cosine = finite_mean(ordered[f"{pooling}_cosine"], [dims.LAYER])
        baseline_name = f"{pooling}_baseline"
        baseline = finite_mean(ordered[baseline_name], [dims.LAYER]) if baseline_name in ordered else None
        for language in all_languages:
            values = np.asarray(cosine.sel({dims.LANGUAGE: language}).values, dtype=np.float64)
            if not _finite(values):
                continue
            if language not in shown:
                shown.append(language)
            _series(ax, steps, values, flagged, color=colors[language])
            if baseline is not None:
                base = np.asarray(baseline.sel({dims.LANGUAGE: language}).values, dtype=np.float64)
                ax.plot(
                    steps[~flagged], base[~flagged], color=colors[language], linestyle="--", linewidth=1.1
                )
        ax.set_title(title, fontsize=10)
        _step_axis(ax, steps)
        _mark_flagged(ax, flagged_steps)
    axes[0].set_ylabel("cosine similarity (mean over layers)")
    handles: list[Any] = [
        Line2D([], [], color=colors[language], label=_plain(language)) for language in shown
    ]
    handles.append(Line2D([], [], color="0.3", label="translation pairs"))
    handles.append(Line2D([], [], color="0.3", linestyle="--", label="mismatched pairs (baseline)"))
    if flagged_steps:
        handles.append(Line2D([], [], color=_FLAG_COLOR, alpha=0.3, linewidth=9, label="flagged checkpoint"))
        handles.append(_flag_cross())
    against = f" and their {reference} translations" if reference else " and their translations"
    figure.suptitle(_plain(f"Cosine similarity between sentences{against} over training"), fontsize=11)
    figure.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    return figure


# --------------------------------------------------------------------------------------------
# 5. Held-out loss per checkpoint.


def heldout_loss(health: xr.Dataset | None) -> Figure | None:
    """Held-out loss per checkpoint, one line per language; flagged steps numbered with reasons."""
    if health is None or dims.HELDOUT_LOSS not in health or health.sizes.get(dims.STEP, 0) == 0:
        return None
    ordered = health.sortby(dims.STEP)
    loss = ordered[dims.HELDOUT_LOSS]
    if not _finite(loss.values):
        return None
    steps = np.asarray(ordered[dims.STEP].values)
    flagged_reasons = flags(ordered)
    flagged_steps = list(flagged_reasons)
    flagged = np.isin(steps, flagged_steps)
    languages = [str(v) for v in loss[dims.LANGUAGE].values] if dims.LANGUAGE in loss.dims else []
    colors = _language_colors(languages)

    figure = Figure(figsize=(9.5, 5.2), dpi=DPI, layout="constrained")
    ax = figure.subplots()
    handles: list[Any] = []
    series = (
        [(language, loss.sel({dims.LANGUAGE: language})) for language in languages]
        if languages
        else [("all", loss)]
    )
    for language, values in series:
        array = np.asarray(values.values, dtype=np.float64)
        if not _finite(array):
            continue
        line = _series(ax, steps, array, flagged, color=colors.get(language, "0.2"), label=_plain(language))
        handles.append(line)
    _step_axis(ax, steps)
    if flagged_steps:  # headroom for the numbers of the flagged steps
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.12 * (high - low))
    _mark_flagged(ax, flagged_steps, numbered=True)
    ax.set_ylabel("held-out loss (nats per token)")
    ax.set_title("Held-out next-token loss per checkpoint", fontsize=11)
    figure.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False, title="language")
    if flagged_steps:
        notes = [
            Line2D([], [], color=_FLAG_COLOR, alpha=0.3, linewidth=9, label=_reason_label(i, step, reason))
            for i, (step, reason) in enumerate(flagged_reasons.items())
        ]
        figure.legend(
            handles=notes,
            loc="outside lower center",
            fontsize=9,
            frameon=False,
            title="flagged checkpoints",
            title_fontsize=9,
            alignment="left",
        )
    return figure


def _reason_label(index: int, step: int, reason: str) -> str:
    text = _plain(f"[{index + 1}] step {step}: {reason}")
    return "\n      ".join(textwrap.wrap(text, 100)) or text
