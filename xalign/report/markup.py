"""The HTML the report pages share: escaping, tables, the page around them and its style."""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["CSS", "document", "escape", "table"]


def escape(text: object) -> str:
    """``text`` as HTML text or attribute value."""
    return html.escape(str(text), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "") -> str:
    """An HTML table; cells are escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1.6em; }
.skip { color: #777; font-style: italic; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: 0.9em; padding-top: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td { font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 60em; }
code { background: #f3f3f3; padding: 0 0.25em; }
"""


def document(title: str, body: Sequence[str]) -> str:
    """A whole HTML page: ``body``'s parts (empty ones left out) under ``title``, with the style."""
    content = "\n".join(part for part in body if part)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} — xalign report</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n{content}\n</body>\n</html>\n"
    )
