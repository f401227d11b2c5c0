"""Plain-text rendering of library results for the terminal, and their JSON for ``--json``."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import click
import numpy as np
import xarray as xr

from xalign import dims
from xalign.store.info import StoreSummary

__all__ = [
    "JSON_OPTION",
    "Output",
    "format_bytes",
    "plain",
    "render_correlation",
    "render_health",
    "render_overlap",
    "render_scores",
    "render_similarity",
    "render_summary",
    "render_table",
    "render_transfer",
]

JSON_OPTION = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the results as one JSON object on stdout instead of text (progress stays on stderr).",
)


class Output:
    """What a command prints: its text, or with ``--json`` one JSON object of the same results.

    ``echo`` is text only; ``add`` gathers the results the text shows (xarray objects,
    dataclasses, numbers) for JSON; ``finish`` prints the JSON. Warnings go to stderr
    either way (``click.echo(..., err=True)``).
    """

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.fields: dict[str, Any] = {}

    def echo(self, text: str = "") -> None:
        if not self.as_json:
            click.echo(text)

    def add(self, **fields: Any) -> None:
        self.fields.update(fields)

    def finish(self) -> None:
        if self.as_json:
            click.echo(json.dumps(plain(self.fields), indent=2, allow_nan=False))


def plain(value: Any) -> Any:
    """``value`` as JSON-able Python: xarray objects as ``to_dict(data="list")`` (dims, coords,
    data, attrs), dataclasses as dicts, NumPy values as numbers and lists, NaN as null."""
    if isinstance(value, xr.Dataset | xr.DataArray):
        return plain(value.to_dict(data="list"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime.date | datetime.datetime | np.datetime64):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


STALE = " (stale: the store grew since; run it again)"
LAYER_NOTE = "  layer: hidden-state index, 0 = the embeddings (the reference's layer L is index L - 1)"


def format_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render_table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """Left-aligned text columns; numbers right-aligned."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    if text == "-":  # a missing number
        return True
    try:
        float(text.rstrip("%"))
    except ValueError:
        return False
    return True


def _mean_loss(losses: dict[str, float]) -> str:
    measured = [v for v in losses.values() if math.isfinite(v)]
    return f"{sum(measured) / len(measured):.3f}" if measured else "-"


def render_summary(location: str, summary: StoreSummary) -> str:
    """The text of ``xalign info``."""
    state = "complete" if summary.complete else "INCOMPLETE (rerun the extraction to resume)"
    prov = summary.provenance
    out = [
        f"store     {location}",
        f"schema    v{summary.schema_version}; {format_bytes(summary.bytes_stored)} on disk; {state}",
        "dims      " + ", ".join(f"{dim} {size}" for dim, size in summary.sizes.items()),
        f"model     {prov.get('model_id')} (tokenizer {prov.get('tokenizer')}, "
        f"pooling {prov.get('pooling')}, dtype {prov.get('dtype')})",
        f"made by   xalign {prov.get('xalign_version')}, config {str(prov.get('config_hash'))[:12]}",
        "",
        "steps",
    ]
    step_rows = [
        (
            s.step,
            s.revision,
            s.fingerprint[:12],
            _mean_loss(s.heldout_loss),
            f"DUPLICATE weights of step {', '.join(map(str, s.duplicate_of))}" if s.duplicate_of else "",
        )
        for s in summary.steps
    ]
    out.append(render_table(("step", "revision", "fingerprint", "loss", ""), step_rows))
    out += ["", "languages"]
    language_rows = [
        (
            lang.language,
            ",".join(lang.treebanks),
            lang.sentences,
            lang.words,
            *lang.words_per_split.values(),
            lang.windowed_sentences,
            lang.unencoded_words,
            f"{100 * lang.done_fraction:.0f}%",
            format_bytes(lang.bytes_stored),
        )
        for lang in summary.languages
    ]
    header = ("language", "treebanks", "sentences", "words", "train", "dev", "test")
    out.append(render_table((*header, "windowed", "no vector", "done", "on disk"), language_rows))
    if any(lang.windowed_sentences or lang.unencoded_words for lang in summary.languages):
        out.append(
            "  windowed: sentences longer than the model's window, run in overlapping windows; "
            "no vector: words no subword encodes (NaN, left out of probing)"
        )
    out += ["", "attributes (words per value, all splits)"]
    for lang in summary.languages:
        for attribute, values in lang.attributes.items():
            counts = ", ".join(f"{value} {count}" for value, count in values.items()) or "-"
            out.append(f"  {lang.language:<4} {attribute:<12} {counts}")
    out += ["", "results" + ("" if summary.results else "   none yet")]
    for name, result in summary.results.items():
        # The probe's own hyperparameters are in the group's attrs; the line keeps the grid's.
        params = ", ".join(f"{k} {v}" for k, v in result["parameters"].items() if k != "probe_params")
        stale = STALE if result.get("path") in summary.stale else ""
        out.append(
            f"  {name}: {result['done'] + result['skipped']}/{result['cells']} cells "
            f"({result['done']} probed, {result['skipped']} skipped by the filters; {params}){stale}"
        )
    out += ["", "analyses" + ("" if summary.analyses else "   none yet")]
    out += [
        f"  {kind}: "
        + ", ".join(name + (STALE if f"analyses/{kind}/{name}" in summary.stale else "") for name in names)
        for kind, names in summary.analyses.items()
    ]
    data_files = prov.get("data_files") or {}
    if isinstance(data_files, dict) and data_files:
        out += ["", "data files (sha256)"]
        out += [f"  {str(digest)[:16]}  {name}" for name, digest in data_files.items()]
    return "\n".join(out)


def _fmt(value: float, digits: int = 3) -> str:
    """A number, or ``-`` where there is none (not measured, not probed)."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _percent(share: float) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.0f}%"


def render_overlap(summary: xr.Dataset) -> str:
    """Mean overlap per (step, layer), its multiple of chance, the share significant and, where
    the overlap was gated, the (language, attribute) cells that passed of those probed."""
    summary = summary.sortby(dims.STEP)
    gated = "n_passed" in summary and "n_probed" in summary
    rows = []
    for step in summary[dims.STEP].values:
        for layer in summary[dims.LAYER].values:
            cell = summary.sel({dims.STEP: step, dims.LAYER: layer})
            row: tuple[object, ...] = (
                int(step),
                int(layer),
                _fmt(float(cell["mean_overlap"])),
                _fmt(float(cell["multiple_of_chance"]), 2),
                _percent(float(cell["significant"])),
            )
            if gated:
                row += (f"{int(cell['n_passed'])}/{int(cell['n_probed'])}",)
            rows.append(row)
    header = ("step", "layer", "overlap", "x chance", "significant")
    table = render_table(header + (("cells passed",) if gated else ()), rows)
    if any(row[2] == "-" for row in rows):
        table += "\n  -: no overlap (no attribute with two languages whose cells passed the gate)"
    return table + "\n" + LAYER_NOTE


def render_scores(score: xr.DataArray) -> str:
    """Imported transfer scores: how many per task, and their mean."""
    rows = []
    for task in score[dims.TASK].values:
        values = score.sel({dims.TASK: task})
        rows.append((str(task), int(values.notnull().sum()), _fmt(float(values.mean()))))
    return render_table(("task", "scores", "mean"), rows)


def render_transfer(accuracy: xr.DataArray) -> str:
    """A (language, language_other) accuracy matrix: source rows, target columns."""
    header = ("source \\ target", *[str(v) for v in accuracy[dims.LANGUAGE_OTHER].values])
    rows = [
        (str(source), *[_fmt(float(v), 2) for v in accuracy.sel({dims.LANGUAGE: source}).values])
        for source in accuracy[dims.LANGUAGE].values
    ]
    return render_table(header, rows)


def render_correlation(result: xr.Dataset) -> str:
    """Per layer: cells used, and each statistic's r [CI] and p."""
    statistics = [str(s) for s in result[dims.STATISTIC].values]
    rows = []
    for layer in result[dims.LAYER].values:
        cells = result.sel({dims.LAYER: layer})
        row: list[object] = [int(layer), int(cells["n_cells"])]
        for statistic in statistics:
            stat = cells.sel({dims.STATISTIC: statistic})
            low, high = _fmt(float(stat["ci_low"]), 2), _fmt(float(stat["ci_high"]), 2)
            p = float(stat["p_value"])
            p_text = "-" if math.isnan(p) else f"{p:.2g}"
            row.append(f"{_fmt(float(stat['r']), 2)} [{low}, {high}] p={p_text}")
        rows.append(row)
    table = render_table(("layer", "cells", *[f"{s} r [95% CI]" for s in statistics]), rows)
    return table + "\n" + LAYER_NOTE


def render_similarity(result: xr.Dataset, reference: str) -> str:
    """Mean-pooled cosine with the reference per step and language (baseline in brackets)."""
    result = result.sortby(dims.STEP)
    languages = [str(v) for v in result[dims.LANGUAGE].values if str(v) != reference]
    rows = []
    for step in result[dims.STEP].values:
        at = result.sel({dims.STEP: step})
        rows.append(
            (
                int(step),
                *[
                    f"{_fmt(float(at['mean_cosine'].sel({dims.LANGUAGE: lang})), 2)}"
                    f" ({_fmt(float(at['mean_baseline'].sel({dims.LANGUAGE: lang})), 2)})"
                    for lang in languages
                ],
            )
        )
    return render_table(("step", *languages), rows)


def render_health(health: xr.Dataset) -> str:
    """Per checkpoint: mean held-out loss, nats above its neighbours, and the verdict."""
    health = health.sortby(dims.STEP)
    mean_loss = health[dims.HELDOUT_LOSS].mean(dims.LANGUAGE)
    rows = [
        (
            int(step),
            _fmt(float(mean_loss.sel({dims.STEP: step})), 2),
            _fmt(float(health["loss_excess"].sel({dims.STEP: step})), 2),
            str(health["reason"].sel({dims.STEP: step}).item()) or "ok",
        )
        for step in health[dims.STEP].values
    ]
    table = render_table(("step", "held-out loss", "above neighbours", "verdict"), rows)
    if any(row[2] == "-" for row in rows):
        table += "\n  -: not judged (no neighbour to compare with, or no loss measured)"
    return table
