"""Plain-text rendering of library results for the terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence

from xalign.store.info import StoreSummary

__all__ = ["format_bytes", "render_summary", "render_table"]


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
            f"{100 * lang.done_fraction:.0f}%",
            format_bytes(lang.bytes_stored),
        )
        for lang in summary.languages
    ]
    out.append(
        render_table(
            ("language", "treebanks", "sentences", "words", "train", "dev", "test", "done", "on disk"),
            language_rows,
        )
    )
    out += ["", "attributes (words per value, all splits)"]
    for lang in summary.languages:
        for attribute, values in lang.attributes.items():
            counts = ", ".join(f"{value} {count}" for value, count in values.items()) or "-"
            out.append(f"  {lang.language:<4} {attribute:<12} {counts}")
    out += ["", "results" + ("" if summary.results else "   none yet")]
    for name, result in summary.results.items():
        params = ", ".join(f"{k} {v}" for k, v in result["parameters"].items())
        out.append(
            f"  {name}: {result['done'] + result['skipped']}/{result['cells']} cells "
            f"({result['done']} probed, {result['skipped']} skipped by the filters; {params})"
        )
    data_files = prov.get("data_files") or {}
    if isinstance(data_files, dict) and data_files:
        out += ["", "data files (sha256)"]
        out += [f"  {str(digest)[:16]}  {name}" for name, digest in data_files.items()]
    return "\n".join(out)
