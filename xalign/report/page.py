"""The report page: the figures and key numbers of a run in one self-contained ``index.html``.

The page needs no server and nothing from the network: inline CSS, no script, and the figures
as PNGs next to it under relative paths, so the folder can be copied or zipped as it is. Every
text that comes from the data (titles, languages, reasons, notes) is HTML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from xalign import dims
from xalign.report import figures
from xalign.report.data import CorrelationView, ReportData
from xalign.report.figures import correlation_line, format_number, format_p
from xalign.report.markup import document as _page
from xalign.report.markup import escape as _e
from xalign.report.markup import table as _table

if TYPE_CHECKING:
    from matplotlib.figure import Figure


__all__ = ["write_report"]


@dataclass(frozen=True)
class _Shown:
    """One figure of the page: its file (None when skipped), caption, or why it was skipped."""

    file: str | None
    alt: str
    caption: str
    skipped: str = ""


def write_report(data: ReportData, out: Path) -> list[Path]:
    """Write the figures (PNG, and an SVG beside each) and ``index.html`` of ``data`` into ``out``.

    Parameters
    ----------
    data
        What to show.
    out
        The folder, created (with its parents) if missing; files of the same names are replaced.

    Returns
    -------
    list[pathlib.Path]
        The files written, ``index.html`` last.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    flagged = figures.flags(data.health)

    def draw(name: str, make: Callable[[], Figure | None], caption: str, skipped: str) -> _Shown:
        alt = caption.split(". ")[0]
        figure = make()
        if figure is None:
            return _Shown(None, alt, caption, skipped)
        written.append(figures.save(figure, out / name))
        return _Shown(name, alt, caption, skipped)

    quality = draw(
        "probe_quality.png",
        lambda: figures.probe_quality(data.probe_quality),
        "Each probed cell's held-out test MI with its k selected neurons, against the mean test MI "
        "when the test labels are permuted (the probe quality gate's null). Only cells that passed "
        "the gate (blue) take part in the overlap.",
        "No probe quality gate in these results (probe them again to get one).",
    )
    loss = draw(
        "heldout_loss.png",
        lambda: figures.heldout_loss(data.health),
        "Held-out next-token loss of each checkpoint, per language. Red bands mark flagged checkpoints "
        "(numbered; the reasons are listed under the plot); values at them are crosses.",
        "No held-out loss was measured.",
    )
    trend = draw(
        "overlap_vs_step.png",
        lambda: figures.overlap_vs_step(data.summary, data.health),
        _trend_caption(data.summary),
        "No overlap summary in this report." if data.summary is None else "The overlap summary has no value.",
    )
    by_attribute = draw(
        "overlap_by_attribute.png",
        lambda: figures.overlap_by_attribute(data.overlap, data.health, layer=data.layer),
        f"Overlap vs step for each attribute at layer {data.layer}: the line is the mean over language "
        "pairs, the dark band the middle half of the pairs and the pale band their range; dashed: chance "
        "(k/d), dotted: the pairs' mean noise ceiling (reproducibility of selection within a language). "
        "Only cells whose probes passed the gate take part.",
        "No per-attribute overlap to plot.",
    )
    by_step = draw(
        "overlap_heatmaps_by_step.png",
        lambda: figures.overlap_heatmaps_by_step(data.overlap, data.health, layer=data.layer),
        f"Language × language overlap at layer {data.layer}, one panel per checkpoint (mean over "
        "attributes; grey: no value, e.g. a probe that failed the gate). The red line on the colour "
        "bar is chance.",
        "No pairwise overlap to show by step.",
    )
    heatmaps = draw(
        "overlap_heatmaps.png",
        lambda: figures.overlap_heatmaps(data.overlap, data.health),
        _heatmap_caption(data.overlap, data.health),
        "No pairwise overlap in this report."
        if data.overlap is None
        else "The pairwise overlap has no value.",
    )
    matrices = draw(
        "transfer_matrices.png",
        lambda: figures.transfer_matrices(data.finetuned, data.health),
        "Zero-shot transfer measured by fine-tuning each checkpoint for UPOS on the source language "
        "(xalign finetune): accuracy on each target's test sentences, one panel per checkpoint; each "
        "title gives the baseline of always predicting the source's most frequent tag, over the "
        "targets. It reads no stored hidden state, so it is independent of the overlap.",
        "No fine-tuned transfer in this store (xalign finetune).",
    )
    scatters = [
        draw(
            f"overlap_vs_transfer_{i}.png",
            partial(figures.correlation_scatter, view),
            _scatter_caption(view),
            f"{view.title}: no cell has both values.",
        )
        for i, view in enumerate(data.correlations)
    ]
    similarity = draw(
        "similarity_vs_step.png",
        lambda: figures.similarity_vs_step(data.similarity, data.health),
        _similarity_caption(data.similarity),
        "No parallel-sentence similarity in this report."
        if data.similarity is None
        else "The parallel-sentence similarity has no value.",
    )

    body = [
        f"<h1>{_e(data.title)}</h1>",
        _meta(data),
        _notes(data.notes),
        "<h2>Flagged checkpoints</h2>",
        _flag_table(data.health, flagged),
        "<h2>Probe quality</h2>",
        _figure(quality),
        "<h2>Neuron overlap across languages</h2>",
        _overlap_numbers(data.summary, flagged),
        _figure(trend),
        _attribute_table(data.overlap, data.health),
        _figure(by_attribute),
        _figure(by_step),
        _figure(heatmaps),
        "<h2>Overlap and transfer</h2>",
        _figure(matrices),
        _correlation_table(data.correlations),
        *(_figure(s) for s in scatters),
        "<h2>Parallel-sentence similarity</h2>",
        _similarity_numbers(data.similarity, flagged),
        _figure(similarity),
        "<h2>Checkpoint health</h2>",
        _figure(loss),
        "<h2>Departures from the reference procedure</h2>",
        _departures(data.departures),
    ]
    index = out / "index.html"
    index.write_text(_page(data.title, body), encoding="utf-8")
    written.append(index)
    return written


# --------------------------------------------------------------------------------------------
# Captions.


def _general(value: object) -> str:
    """A number with three significant digits, or an em dash."""
    if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.3g}"


def _chance_text(attrs: Mapping[str, object]) -> str:
    chance = _general(attrs.get("chance"))
    if chance == "—":
        return ""
    k, d = attrs.get("k"), attrs.get("n_neurons")
    how = f" = k/d = {k}/{d}" if k is not None and d is not None else ""
    return f" Chance{how} = {chance}: the expected overlap of two random neuron sets of that size."


def _trend_caption(summary: xr.Dataset | None) -> str:
    attrs = summary.attrs if summary is not None else {}
    k = attrs.get("k")
    alpha = attrs.get("alpha", 0.05)
    return (
        f"Mean overlap of the top-{k if k is not None else 'k'} neuron sets of each pair of languages "
        "(fraction of the set they share), averaged over language pairs and attributes, per layer, "
        "by training step. "
        f"The dashed line is chance; the right axis reads multiples of chance.{_chance_text(attrs)} "
        f"The lower panel is the fraction of (pair, attribute) cells whose overlap is significant "
        f"(hypergeometric test, Holm-corrected within each step and layer, p < {alpha}). "
        "Red bands mark flagged checkpoints, left out of the lines (their values are crosses)."
    )


def _heatmap_caption(overlap: xr.Dataset | None, health: xr.Dataset) -> str:
    chosen = figures.heatmap_step(overlap, health)
    attrs = overlap.attrs if overlap is not None else {}
    where = ""
    if chosen is not None:
        step, flagged = chosen
        which = (
            "the last checkpoint (every checkpoint with data is flagged)"
            if flagged
            else "the last unflagged checkpoint"
        )
        where = f" at step {step}, {which}"
    return (
        f"Overlap of the top-k neuron sets of each pair of languages{where}, averaged over attributes, "
        f"one panel per layer. Grey cells have no value (a language with itself, or a cell not probed)."
        f"{_chance_text(attrs)} The red line on the color bar is chance."
    )


def _scatter_caption(view: CorrelationView) -> str:
    n_flagged = int(np.asarray(view.flagged).astype(bool).sum())
    flagged = f" {n_flagged} point(s) come from flagged checkpoints (hollow red)." if n_flagged else ""
    return (
        f"{view.title}. One point per cell: color is the training step, marker shape the language."
        f"{flagged} The title gives Pearson r and Spearman ρ with bootstrap confidence intervals over cells; "
        "the dashed line is a least-squares fit."
    )


def _similarity_caption(similarity: xr.Dataset | None) -> str:
    reference = similarity.attrs.get("reference", "the reference language") if similarity is not None else ""
    return (
        f"Mean cosine similarity between each sentence and its {reference} translation (solid), per "
        "language, averaged over layers, for mean-pooled (left) and last-token (right) sentence vectors. "
        "The dashed line of the same color is the baseline of mismatched pairs (a sentence against the "
        "translation of another): hidden states are anisotropic, so alignment is the gap between the two. "
        "Red bands mark flagged checkpoints."
    )


# --------------------------------------------------------------------------------------------
# Tables.


def _skip(text: str) -> str:
    return f'<p class="skip">{_e(text)}</p>'


def _meta(data: ReportData) -> str:
    from xalign import __version__

    parts = [f"Model: <code>{_e(data.model)}</code>", f"xalign {_e(__version__)}"]
    health = data.health
    if health is not None and health.sizes.get(dims.STEP, 0):
        steps = sorted(int(s) for s in health[dims.STEP].values)
        parts.append(f"{len(steps)} checkpoint(s), steps {steps[0]}–{steps[-1]}")
    if health is not None and dims.LANGUAGE in health.dims:
        languages = ", ".join(str(v) for v in health[dims.LANGUAGE].values)
        parts.append(f"languages: {_e(languages)}")
    return '<p class="meta">' + " · ".join(parts) + "</p>"


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>"


def _departures(settings: Sequence[str]) -> str:
    from xalign.reference import ALWAYS, WANG2024

    intro = f"<p>Compared with {_e(WANG2024.description)}. " + (
        "Settings of this run that differ (<code>--preset wang2024</code> on extract, probe and "
        "overlap sets them all to the reference's):</p>"
        if settings
        else "Every setting of this run is the reference's.</p>"
    )
    listed = "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in settings) + "</ul>" if settings else ""
    always = (
        "<p>Whatever the settings:</p><ul>" + "".join(f"<li>{_e(line)}</li>" for line in ALWAYS) + "</ul>"
    )
    return intro + listed + always


def _flag_table(health: xr.Dataset, flagged: Mapping[int, str]) -> str:
    if not flagged:
        return "<p>No checkpoint is flagged.</p>"
    duplicate: dict[int, int] = {}
    if health is not None and "duplicate_of" in health:
        for step, of in zip(health[dims.STEP].values, health["duplicate_of"].values, strict=True):
            duplicate[int(step)] = int(of)
    rows = [
        [str(step), reason, str(duplicate[step]) if duplicate.get(step, -1) >= 0 else "—"]
        for step, reason in flagged.items()
    ]
    intro = (
        f"<p>{len(flagged)} checkpoint(s) are flagged: duplicated weights or an anomalous held-out loss. "
        "Figures mark them; findings that rest on them are artefacts.</p>"
    )
    return intro + _table(["step", "reason", "duplicate of step"], rows)


def _shown_steps(values: xr.DataArray, flagged: Mapping[int, str]) -> list[int]:
    """The unflagged steps where ``values`` has a finite value, in order.

    Falls back to every unflagged step, then to every step, so that there is always one.
    """
    others = [d for d in values.dims if d != dims.STEP]
    has_data = np.asarray(figures.finite_mask(values).any(others).values).astype(bool)
    steps = [int(s) for s in values[dims.STEP].values]
    for candidates in (
        [s for s, ok in zip(steps, has_data, strict=True) if ok and s not in flagged],
        [s for s in steps if s not in flagged],
        steps,
    ):
        if candidates:
            return sorted(candidates)
    return []


def _overlap_numbers(summary: xr.Dataset | None, flagged: Mapping[int, str]) -> str:
    if summary is None or "mean_overlap" not in summary or summary.sizes.get(dims.STEP, 0) == 0:
        return _skip("No overlap summary in this report.")
    steps = _shown_steps(summary["mean_overlap"], flagged)
    first, last = steps[0], steps[-1]
    at_first = summary.sel({dims.STEP: first})
    at_last = summary.sel({dims.STEP: last})
    layers = list(summary[dims.LAYER].values) if dims.LAYER in summary.dims else [None]

    def value(ds: xr.Dataset, name: str, layer: object) -> float:
        if name not in ds:
            return math.nan
        selected = ds[name] if layer is None else ds[name].sel({dims.LAYER: layer})
        return float(selected.values)

    rows = []
    for layer in layers:
        n_pairs = value(at_last, "n_pairs", layer)
        rows.append(
            [
                "all" if layer is None else str(layer),
                format_number(value(at_first, "mean_overlap", layer)),
                format_number(value(at_last, "mean_overlap", layer)),
                _times(value(at_last, "multiple_of_chance", layer)),
                format_number(value(at_last, "significant", layer), 2),
                str(int(n_pairs)) if math.isfinite(n_pairs) else "—",
            ]
        )
    chance = summary.attrs.get("chance")
    alpha = summary.attrs.get("alpha", 0.05)
    header = [
        "layer",
        f"mean overlap, step {first}",
        f"mean overlap, step {last}",
        f"multiple of chance, step {last}",
        f"fraction significant (Holm p < {alpha}), step {last}",
        "(pair, attribute) cells",
    ]
    caption = (
        f"First and last unflagged checkpoints with data. Chance (k/d) = {_general(chance)}, "
        f"k = {summary.attrs.get('k', '?')}, d = {summary.attrs.get('n_neurons', '?')}."
    )
    return _table(header, rows, caption=caption)


def _times(multiple: float) -> str:
    text = format_number(multiple, 2)
    return text + "×" if math.isfinite(multiple) else text


def _attribute_table(overlap: xr.Dataset | None, health: xr.Dataset) -> str:
    """Mean overlap per layer and attribute at the heatmaps' step."""
    chosen = figures.heatmap_step(overlap, health)
    if overlap is None or chosen is None or dims.ATTRIBUTE not in overlap.dims:
        return ""
    step, _ = chosen
    values = overlap["overlap"].sel({dims.STEP: step})
    mean = figures.finite_mean(values, [dims.LANGUAGE, dims.LANGUAGE_OTHER])
    attributes = [str(a) for a in mean[dims.ATTRIBUTE].values]
    layers = list(mean[dims.LAYER].values) if dims.LAYER in mean.dims else [None]
    tested = overlap["mean_p"].sel({dims.STEP: step}) if "mean_p" in overlap else None
    counts = None
    if "n_passed" in overlap and "n_probed" in overlap:
        counts = overlap[["n_passed", "n_probed"]].sel({dims.STEP: step})
    rows = []
    for layer in layers:
        row = mean if layer is None else mean.sel({dims.LAYER: layer})
        cells = []
        for a in attributes:
            text = format_number(float(row.sel({dims.ATTRIBUTE: a}).values))
            extra = []
            if tested is not None:
                p = tested.sel({dims.ATTRIBUTE: a})
                p_value = float((p if layer is None else p.sel({dims.LAYER: layer})).values)
                if math.isfinite(p_value):
                    extra.append(f"p {format_p(p_value)}")
            if counts is not None:
                c = counts.sel({dims.ATTRIBUTE: a})
                c = c if layer is None else c.sel({dims.LAYER: layer})
                extra.append(f"{int(c['n_passed'])}/{int(c['n_probed'])} passed")
            cells.append(text + (f" ({'; '.join(extra)})" if extra else ""))
        rows.append(["all" if layer is None else str(layer), *cells])
    caption = f"Mean overlap over language pairs, per attribute, at step {step}."
    if tested is not None:
        caption += (
            " In brackets: the p-value of that mean against chance, by permuting each language's "
            "neuron indices (the exact null of the mean across dependent pairs), uncorrected."
        )
    if counts is not None:
        caption += " n/m passed: languages whose probe beat its permutation null, of those probed."
    return _table(["layer", *attributes], rows, caption=caption)


def _correlation_table(views: Sequence[CorrelationView]) -> str:
    if not views:
        return _skip("No overlap-vs-transfer correlation in this report.")
    rows = []
    for view in views:
        pearson = view.stats.get("pearson")
        spearman = view.stats.get("spearman")
        n = next((s.n for s in (pearson, spearman) if s is not None), None)
        rows.append(
            [
                view.title,
                "—" if n is None else str(n),
                correlation_line(pearson, "r"),
                format_p(pearson.p_value if pearson is not None else None),
                correlation_line(spearman, "ρ"),
                format_p(spearman.p_value if spearman is not None else None),
                str(int(np.asarray(view.flagged).astype(bool).sum())),
            ]
        )
    confidence = next(
        (s.confidence for v in views for s in v.stats.values() if math.isfinite(s.confidence)), math.nan
    )
    level = f"{confidence:.0%}" if math.isfinite(confidence) else ""
    return _table(
        ["correlation", "n cells", "Pearson r [CI]", "p", "Spearman ρ [CI]", "p", "flagged points"],
        rows,
        caption=f"Brackets: {level} percentile-bootstrap confidence intervals over cells.".replace("  ", " "),
    )


def _similarity_numbers(similarity: xr.Dataset | None, flagged: Mapping[int, str]) -> str:
    if similarity is None or similarity.sizes.get(dims.STEP, 0) == 0 or dims.LANGUAGE not in similarity.dims:
        return _skip("No parallel-sentence similarity in this report.")
    names = ("mean_cosine", "mean_baseline", "last_cosine", "last_baseline")
    if not any(name in similarity for name in names):
        return _skip("The parallel-sentence similarity has none of its variables.")
    present = next(name for name in names if name in similarity)
    last = _shown_steps(similarity[present], flagged)[-1]
    at_last = similarity.sel({dims.STEP: last})
    means = {name: _layer_mean(at_last[name]) if name in at_last else None for name in names}
    rows = []
    for language in at_last[dims.LANGUAGE].values:
        cells = []
        for name in names:
            mean = means[name]
            cells.append(
                format_number(float(mean.sel({dims.LANGUAGE: language}).values)) if mean is not None else "—"
            )
        if all(c == "—" for c in cells):
            continue
        rows.append([str(language), *cells])
    if not rows:
        return _skip("The parallel-sentence similarity has no value.")
    reference = similarity.attrs.get("reference", "reference")
    return _table(
        [
            "language",
            "mean-pooled cosine",
            "mean-pooled baseline",
            "last-token cosine",
            "last-token baseline",
        ],
        rows,
        caption=f"Cosine similarity to the {reference} translation at step {last}, mean over layers.",
    )


def _layer_mean(values: xr.DataArray) -> xr.DataArray:
    return figures.finite_mean(values, [dims.LAYER])


# --------------------------------------------------------------------------------------------
# The page.


def _figure(shown: _Shown) -> str:
    if shown.file is None:
        return _skip(shown.skipped)
    return (
        f'<figure><img src="{_e(shown.file)}" alt="{_e(shown.alt)}">'
        f"<figcaption>{_e(shown.caption)} "
        f'<a href="{_e(str(Path(shown.file).with_suffix(".svg")))}">SVG</a></figcaption></figure>'
    )
