"""Import downstream transfer scores (e.g. XNLI accuracy per checkpoint and language).

A scores file is a CSV file with a header row, or a JSON file holding a list of objects (or
an object ``{"scores": [...]}``), with one score per row under the columns / keys

``task``
    The downstream task (e.g. ``xnli``).
``language``
    A language of the store.
``step`` or ``revision``
    The checkpoint: a step number of the store, a revision of the store (as in its
    ``revision`` coordinate), or a revision naming the step number like ``step1000`` or
    ``global_step1000`` (a path ending in one also works).
``score``
    A finite number.
``model`` (optional)
    The model the score is of; with ``model=`` given, rows of other models are skipped.

Two other layouts are read as users have them:

- **A wide table** (XTREME-style per-language scores): a CSV file whose columns are ``step`` or
  ``revision``, optionally ``task`` and ``model``, and one column per language (``en``, ``fr``
  ...); without a ``task`` column the task is the file's stem (``udpos.csv``: ``udpos``). An
  empty cell is no score; a bad one is named by line and column.
- **lm-evaluation-harness results** (``lm_eval ... --output_path``): a JSON object with
  ``results`` (task -> metrics) and ``config.model_args`` naming the checkpoint
  (``pretrained=...,revision=global_step1000``); one file per revision, several files at once.
  A task ``xnli_fr`` is task ``xnli`` in language ``fr``; its score is the first of ``acc``,
  ``f1``, ``exact_match`` (``acc,none`` in harness 0.4) it reports. Tasks whose language is not
  in the store are left out and listed (:attr:`attrs` ``skipped``), as are tasks without one.

:func:`read_transfer_scores` lays them out as a DataArray over (task, step, language) that
spans every step and language of the store, NaN where the file has no score.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.errors import XalignError

__all__ = ["REQUIRED_COLUMNS", "TransferScoresError", "read_transfer_scores"]

REQUIRED_COLUMNS = ("task", "language", "score")
"""Columns every scores file has, besides ``step`` or ``revision``."""
_CHECKPOINT_COLUMNS = ("step", "revision")
_MAX_LISTED = 20
_STEP_IN_REVISION = re.compile(r"(?:^|[^0-9A-Za-z])(?:global_)?step[_-]?(\d+)/?$")


class TransferScoresError(XalignError, ValueError):
    """A transfer scores file that cannot be read; names the file, and the line / item at fault.

    Parameters
    ----------
    path
        The file.
    problems
        One message per problem, each starting with where it is (``path:line`` or
        ``path: item i``); at most 20 are shown, with the number of the others.
    """

    def __init__(self, path: str | Path, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        shown = self.problems[:_MAX_LISTED]
        if len(self.problems) == 1:
            message = shown[0]
        else:
            lines = "\n".join(f"  - {p}" for p in shown)
            more = len(self.problems) - len(shown)
            tail = f"\n  ... and {more} more" if more else ""
            message = f"{self.path}: {len(self.problems)} problems in transfer scores:\n{lines}{tail}"
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class _Row:
    where: str
    """``path:line`` or ``path: item i``."""
    fields: Mapping[str, Any]
    problem: str = ""
    """What makes the row unreadable as a whole, if anything."""


def read_transfer_scores(
    path: Path | Sequence[Path],
    *,
    steps: Mapping[int, str],
    languages: Sequence[str],
    model: str | None = None,
) -> xr.DataArray:
    """Read CSV or JSON files of transfer scores into a DataArray over (task, step, language).

    Parameters
    ----------
    path
        A ``.csv`` file with a header row, or a ``.json`` file (see the module docstring); or
        several (e.g. one lm-evaluation-harness results file per revision), read as one.
    steps
        The store's step number -> revision, in the store's order.
    languages
        The store's languages.
    model
        If given, rows whose ``model`` is another one are skipped (rows without a model are kept).

    Returns
    -------
    xarray.DataArray
        Named ``score``, float64, dims (task, step, language): tasks sorted, every step of
        ``steps`` in its order and every one of ``languages``; NaN where no row gives a score.
        attrs: ``source`` (the file) and ``model`` (if given).

    Raises
    ------
    TransferScoresError
        If the file cannot be read, lacks a column, or has rows naming no store step or
        revision, a language not in the store, a score that is not a finite number, or the
        same (task, step, language) twice; every bad row is listed (up to 20).
    """
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not paths:
        raise TransferScoresError("", ["no scores file given"])
    path = paths[0]
    skipped: list[str] = []
    rows = [row for one in paths for row in _rows(one, skipped, languages)]
    step_numbers = [int(s) for s in steps]
    revisions = {str(revision): int(step) for step, revision in steps.items()}
    known_languages = set(languages)
    problems: list[str] = []
    scores: dict[tuple[str, int, str], float] = {}
    first_seen: dict[tuple[str, int, str], str] = {}
    other_models: set[str] = set()
    for row in rows:
        if row.problem:
            problems.append(f"{row.where}: {row.problem}")
            continue
        row_model = _text(row.fields.get("model"))
        if model is not None and row_model and row_model != model:
            other_models.add(row_model)
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in row.fields]
        if not any(c in row.fields for c in _CHECKPOINT_COLUMNS):
            missing.append("step or revision")
        if missing:
            problems.append(f"{row.where}: missing {', '.join(missing)}")
            continue
        row_problems: list[str] = []
        task = _text(row.fields["task"])
        if not task:
            row_problems.append("empty task")
        language = _text(row.fields["language"])
        if language not in known_languages:
            row_problems.append(
                f"language {language!r} is not in the store (it has {', '.join(map(str, languages))})"
            )
        step, step_problem = _checkpoint(row, step_numbers, revisions)
        if step_problem:
            row_problems.append(step_problem)
        score, score_problem = _score(row.fields["score"])
        if score_problem:
            row_problems.append(score_problem)
        if row_problems or step is None or score is None:
            problems.append(f"{row.where}: {'; '.join(row_problems)}")
            continue
        key = (task, step, language)
        if key in first_seen:
            problems.append(
                f"{row.where}: duplicate score for task {task!r}, step {step}, language {language!r} "
                f"(first at {first_seen[key]})"
            )
            continue
        first_seen[key] = row.where
        scores[key] = score
    if problems:
        raise TransferScoresError(path, problems)
    if not scores:
        if other_models:
            raise TransferScoresError(
                path,
                [f"{path}: no scores of model {model!r}; the file has {', '.join(sorted(other_models))}"],
            )
        raise TransferScoresError(path, [f"{path}: no scores"])
    tasks = sorted({task for task, _, _ in scores})
    values = np.full((len(tasks), len(step_numbers), len(languages)), np.nan)
    task_index = {task: i for i, task in enumerate(tasks)}
    step_index = {step: i for i, step in enumerate(step_numbers)}
    language_index = {language: i for i, language in enumerate(languages)}
    for (task, step, language), score in scores.items():
        values[task_index[task], step_index[step], language_index[language]] = score
    attrs: dict[str, Any] = {"source": ", ".join(str(p) for p in paths)}
    if model is not None:
        attrs["model"] = model
    if skipped:
        attrs["skipped"] = "; ".join(skipped)
    return xr.DataArray(
        values,
        dims=(dims.TASK, dims.STEP, dims.LANGUAGE),
        coords={
            dims.TASK: np.asarray(tasks, dtype=object),
            dims.STEP: np.asarray(step_numbers, dtype=np.int64),
            dims.LANGUAGE: np.asarray(list(languages), dtype=object),
        },
        name="score",
        attrs=attrs,
    )


def _rows(path: Path, skipped: list[str], languages: Sequence[str]) -> Iterator[_Row]:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise TransferScoresError(
            path, [f"{path}: unknown scores format {path.suffix!r}; expected a .csv or .json file"]
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise TransferScoresError(path, [f"{path}: cannot read transfer scores: {error}"]) from error
    if suffix == ".csv":
        yield from _csv_rows(path, text)
    else:
        yield from _json_rows(path, text, skipped, languages)


def _csv_rows(path: Path, text: str) -> Iterator[_Row]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    header = [name.strip() for name in reader.fieldnames or []]
    if "language" not in header and "score" not in header and any(c in header for c in _CHECKPOINT_COLUMNS):
        reader.fieldnames = header
        yield from _wide_rows(path, reader, header)
        return
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if not any(c in header for c in _CHECKPOINT_COLUMNS):
        missing.append("step or revision")
    if missing:
        found = ", ".join(repr(h) for h in header) or "none"
        raise TransferScoresError(path, [f"{path}:1: missing column(s) {', '.join(missing)} (found {found})"])
    reader.fieldnames = header
    for record in reader:
        fields = {k: v for k, v in record.items() if k is not None and v is not None}
        yield _Row(where=f"{path}:{reader.line_num}", fields=fields)


_KEYS: tuple[str, ...] = (*_CHECKPOINT_COLUMNS, "task", "model")
"""Columns of a wide table that are not languages."""


def _wide_rows(path: Path, reader: csv.DictReader[str], header: Sequence[str]) -> Iterator[_Row]:
    """One row per (line, language column) of a wide table; empty cells are no score."""
    columns = [c for c in header if c and c not in _KEYS]
    if not columns:
        raise TransferScoresError(path, [f"{path}:1: no language columns besides {', '.join(header)}"])
    for record in reader:
        fields = {k: v for k, v in record.items() if k is not None and v is not None}
        task = _text(fields.get("task")) or path.stem
        for column in columns:
            value = _text(fields.get(column))
            if not value:
                continue
            row = {k: fields[k] for k in _KEYS if k in fields}
            yield _Row(
                where=f"{path}:{reader.line_num} (column {column})",
                fields={**row, "task": task, "language": column, "score": value},
            )


_METRICS = ("acc", "f1", "exact_match")
"""The lm-evaluation-harness metrics a score is taken from, in order of preference."""


def _harness_rows(
    path: Path, text: str, document: Mapping[str, Any], skipped: list[str], languages: Sequence[str]
) -> Iterator[_Row]:
    """One row per task of an lm-evaluation-harness results file."""
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    model_args = str(config.get("model_args", "")) if config else ""
    arguments = dict(part.split("=", 1) for part in model_args.replace(" ", "").split(",") if "=" in part)
    revision = arguments.get("revision", "")
    lines = text.splitlines()
    for task, metrics in document["results"].items():
        where = f"{path}:{_line_of(lines, task)}"
        name, underscore, language = str(task).rpartition("_")
        if not underscore or language not in languages:
            skipped.append(f"{path.name}: {task}")
            continue
        if not revision:
            yield _Row(where=where, fields={}, problem="config.model_args names no revision=")
            continue
        score = _harness_metric(metrics)
        if score is None:
            yield _Row(where=where, fields={}, problem=f"no {', '.join(_METRICS)} among its metrics")
            continue
        fields = {"task": name, "language": language, "revision": revision, "score": score}
        if arguments.get("pretrained"):
            fields["model"] = arguments["pretrained"]
        yield _Row(where=where, fields=fields)


def _harness_metric(metrics: Any) -> Any:
    if not isinstance(metrics, dict):
        return None
    for metric in _METRICS:
        for key in (metric, f"{metric},none"):
            if key in metrics:
                return metrics[key]
    return None


def _line_of(lines: Sequence[str], key: str) -> int:
    """1-based line of the first ``"key":`` in a JSON text (1 if not found)."""
    needle = json.dumps(str(key)) + ":"
    return next((i for i, line in enumerate(lines, start=1) if needle in line.replace(" :", ":")), 1)


def _json_rows(path: Path, text: str, skipped: list[str], languages: Sequence[str]) -> Iterator[_Row]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TransferScoresError(path, [f"{path}:{error.lineno}: not valid JSON: {error.msg}"]) from error
    if isinstance(document, dict) and isinstance(document.get("results"), dict):
        yield from _harness_rows(path, text, document, skipped, languages)
        return
    if isinstance(document, dict) and "scores" in document:
        document = document["scores"]
    if not isinstance(document, list):
        raise TransferScoresError(
            path, [f"{path}: expected a list of scores or an object with a 'scores' list"]
        )
    for index, item in enumerate(document):
        where = f"{path}: item {index}"
        if isinstance(item, dict):
            yield _Row(where=where, fields=item)
        else:
            yield _Row(where=where, fields={}, problem=f"expected an object, got {item!r}")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _score(value: Any) -> tuple[float | None, str]:
    if isinstance(value, bool):
        return None, f"score {value!r} is not a number"
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None, f"score {value!r} is not a number"
    if not math.isfinite(score):
        return None, f"score {value!r} is not a finite number"
    return score, ""


def _checkpoint(row: _Row, steps: Sequence[int], revisions: Mapping[str, int]) -> tuple[int | None, str]:
    """The store step a row names by its ``step`` and/or ``revision``, or what is wrong."""
    found: list[tuple[str, int]] = []
    for column in _CHECKPOINT_COLUMNS:
        value = _text(row.fields.get(column))
        if not value:
            continue
        step = _match(value, steps, revisions, by_number=column == "step")
        if step is None:
            return None, f"{column} {value!r} matches no step or revision of the store ({_listing(steps)})"
        found.append((f"{column} {value!r}", step))
    if not found:
        return None, "no step or revision"
    if len(found) == 2 and found[0][1] != found[1][1]:
        return None, f"{found[0][0]} and {found[1][0]} name different steps ({found[0][1]}, {found[1][1]})"
    return found[0][1], ""


def _match(value: str, steps: Sequence[int], revisions: Mapping[str, int], *, by_number: bool) -> int | None:
    if value in revisions:
        return revisions[value]
    if by_number:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if number.is_integer() and int(number) in steps:
            return int(number)
    named = _STEP_IN_REVISION.search(value)
    if named and int(named.group(1)) in steps:
        return int(named.group(1))
    return None


def _listing(steps: Sequence[int]) -> str:
    if len(steps) <= 10:
        return "steps " + ", ".join(map(str, steps))
    return f"{len(steps)} steps from {min(steps)} to {max(steps)}"
