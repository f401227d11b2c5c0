"""Helpers for writing small CoNLL-U files in tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

WriteFile = Callable[..., Path]
MakeRow = Callable[..., str]


def _row(
    ident: str,
    form: str,
    lemma: str = "_",
    upos: str = "X",
    feats: str = "_",
    misc: str = "_",
    *,
    head: str | None = None,
) -> str:
    """One CoNLL-U line; HEAD/DEPREL are filled in plausibly from the ID."""
    is_word = ident.isdigit()
    if head is None:
        head = ("0" if ident == "1" else "1") if is_word else "_"
    deprel = ("root" if head == "0" else "dep") if is_word else "_"
    return "\t".join([ident, form, lemma, upos, "_", feats, head, deprel, "_", misc])


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write text (or bytes) to a file in ``tmp_path``; return its path."""

    def _write(content: str | bytes, name: str = "xx_test-ud-test.conllu") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return _write


@pytest.fixture
def row() -> MakeRow:
    """Build one CoNLL-U line: ``row(ident, form, lemma, upos, feats, misc)``."""
    return _row
