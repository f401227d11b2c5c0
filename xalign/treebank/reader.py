"""Stream Universal Dependencies CoNLL-U files into sentences of syntactic words.

The `conllu` library parses comments and field values; this module adds what it does
not check (column count, ID sequence, multiword-token ranges, FEATS syntax, encoding)
and reports every problem as a :class:`~xalign.errors.TreebankError` naming the exact
1-based line. Lines are split on tabs only: `conllu` also splits on runs of two
spaces, which would corrupt a FORM or LEMMA that contains them.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from conllu.exceptions import ParseException
from conllu.parser import DEFAULT_FIELD_PARSERS, DEFAULT_FIELDS, parse_comment_line

from xalign.dims import SPLITS
from xalign.errors import TreebankError

__all__ = [
    "Sentence",
    "Token",
    "Word",
    "language_of",
    "read_conllu",
    "split_of",
    "treebank_name",
]

logger = logging.getLogger(__name__)

_N_COLUMNS = len(DEFAULT_FIELDS)
_UD_NAME = re.compile(r"(?P<treebank>(?P<language>[a-z]{2,3})_[A-Za-z0-9]+)-ud-")
_PAIR = r"[^\s=|]+=(?!_(?:\||$))[^\s=|]+"
_FEATS = re.compile(rf"{_PAIR}(?:\|{_PAIR})*")
_SPLIT_IN_NAME = re.compile(r"(?:^|[-_.])(" + "|".join(SPLITS) + r")(?=[-_.]|$)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Word:
    """One UD syntactic word (a line with an integer ID).

    Parameters
    ----------
    index
        The UD ID, 1-based within its sentence.
    form, lemma, upos
        The FORM, LEMMA and UPOS columns as written (``_`` included).
    feats
        The FEATS column; layered names such as ``Number[psor]`` and multi-values such
        as ``2,3`` are kept literally; empty for ``_``.
    token_index
        Position in :attr:`Sentence.tokens` of the surface token holding this word.
    span
        Character span of that surface token in :attr:`Sentence.text`; the words of a
        multiword token share its span.
    line
        1-based line of the word in its file.
    """

    index: int
    form: str
    lemma: str
    upos: str
    feats: Mapping[str, str]
    token_index: int
    span: tuple[int, int]
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """One surface token: a multiword token (``a-b`` line) or a plain word.

    Parameters
    ----------
    form
        The surface form, as it appears in the text.
    span
        Character span in :attr:`Sentence.text`.
    word_indices
        Positions (0-based) in :attr:`Sentence.words` of its syntactic words.
    is_multiword
        Whether it comes from an ``a-b`` range line.
    """

    form: str
    span: tuple[int, int]
    word_indices: tuple[int, ...]
    is_multiword: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Sentence:
    """One CoNLL-U sentence block, empty nodes left out.

    Parameters
    ----------
    sent_id
        ``# sent_id``, or ``<file stem>:<block number>`` (1-based) when missing.
    text
        ``# text``, or the text rebuilt from the surface tokens when it is missing or
        does not match them.
    words, tokens
        The syntactic words and the surface tokens, in order.
    path
        The file read.
    line
        First line of the block.
    metadata
        Every ``# key = value`` comment of the block (``# newdoc``/``# newpar`` with an
        empty value).
    """

    sent_id: str
    text: str
    words: tuple[Word, ...]
    tokens: tuple[Token, ...]
    path: str
    line: int
    metadata: Mapping[str, str]


def treebank_name(path: str | os.PathLike[str]) -> str:
    """Treebank code from a UD file name: ``en_pud-ud-test.conllu`` gives ``en_pud``.

    A file not named the UD way gives its stem.
    """
    name = Path(path).name
    match = _UD_NAME.match(name)
    return match["treebank"] if match else Path(path).stem


def language_of(path: str | os.PathLike[str]) -> str:
    """Language code from a UD file name: ``en_pud-ud-test.conllu`` gives ``en``.

    Raises
    ------
    TreebankError
        If the name does not start with ``<lang>_<treebank>-ud-``.
    """
    match = _UD_NAME.match(Path(path).name)
    if match is None:
        raise TreebankError(
            os.fspath(path),
            None,
            "cannot tell the language from the file name: name it the UD way (en_pud-ud-test.conllu) "
            "or give its language (xalign: --treebank FILE:LANG, e.g. my-tamil.conllu:ta)",
        )
    return match["language"]


def split_of(path: str | os.PathLike[str]) -> str | None:
    """Split named in a file name (``train``, ``dev`` or ``test``), or None."""
    match = _SPLIT_IN_NAME.search(Path(path).stem)
    return match[1] if match else None


def read_conllu(path: str | os.PathLike[str], *, encoding: str = "utf-8") -> Iterator[Sentence]:
    """Yield the sentences of a CoNLL-U file, one block in memory at a time.

    Parameters
    ----------
    path
        The file.
    encoding
        An ASCII-compatible text encoding (lines are decoded one at a time).

    Raises
    ------
    TreebankError
        For any malformed line, naming the file and the 1-based line; for an empty file
        or one without sentences.
    """
    if "\n".encode(encoding) != b"\n":
        raise ValueError(f"encoding {encoding!r} is not ASCII-compatible")
    reader = _FileReader(os.fspath(path))
    block: list[tuple[int, str]] = []
    n_lines = 0
    for n_lines, text in _decoded_lines(reader.path, encoding):
        if text.strip():
            block.append((n_lines, text))
        elif block:
            yield reader.sentence(block)
            block = []
    if block:
        yield reader.sentence(block)
    if reader.n_blocks == 0:
        message = "file is empty" if n_lines == 0 else "file has no sentences"
        raise TreebankError(reader.path, max(n_lines, 1), message)


def _decoded_lines(path: str, encoding: str) -> Iterator[tuple[int, str]]:
    # Decoding line by line, not through a buffered text stream, is what lets a decoding
    # error name its line.
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    number = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = decoder.decode(raw)
            except UnicodeDecodeError as error:
                raise TreebankError(
                    path, number, f"not valid {encoding}: {error.reason} (byte {error.start + 1} of the line)"
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text.rstrip("\r\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise TreebankError(path, number, f"not valid {encoding}: {error.reason}") from None


class _Surface(NamedTuple):
    form: str
    is_multiword: bool
    word_indices: tuple[int, ...]
    space_after: bool


@dataclass(frozen=True, slots=True)
class _Range:
    first: int
    last: int
    form: str
    space_after: bool
    line: int


class _FileReader:
    """Turns the blocks of one file into sentences; remembers per-file state."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.n_blocks = 0
        self.warned = False

    def fail(self, line: int, message: str) -> TreebankError:
        return TreebankError(self.path, line, message)

    def sentence(self, block: Sequence[tuple[int, str]]) -> Sentence:
        self.n_blocks += 1
        metadata: dict[str, str] = {}
        rows: list[tuple[int, dict[str, Any]]] = []
        for number, text in block:
            if text.startswith("#"):
                for key, value in parse_comment_line(text):
                    metadata[key] = value or ""
            else:
                rows.append((number, self.fields(number, text)))
        if not rows:
            raise self.fail(block[0][0], "sentence block has comment lines but no word lines")
        words, tokens = self.structure(rows)
        sent_id = metadata.get("sent_id") or f"{Path(self.path).stem}:{self.n_blocks}"
        text, spans = self.locate(metadata.get("text"), tokens, sent_id, block[0][0])
        token_of = {i: t for t, token in enumerate(tokens) for i in token.word_indices}
        return Sentence(
            sent_id=sent_id,
            text=text,
            words=tuple(
                Word(**word, token_index=token_of[i], span=spans[token_of[i]]) for i, word in enumerate(words)
            ),
            tokens=tuple(
                Token(
                    form=token.form,
                    span=span,
                    word_indices=token.word_indices,
                    is_multiword=token.is_multiword,
                )
                for token, span in zip(tokens, spans, strict=True)
            ),
            path=self.path,
            line=block[0][0],
            metadata=metadata,
        )

    def fields(self, number: int, text: str) -> dict[str, Any]:
        columns = text.split("\t")
        if len(columns) != _N_COLUMNS:
            raise self.fail(number, f"expected {_N_COLUMNS} tab-separated columns, found {len(columns)}")
        for name, column in zip(DEFAULT_FIELDS, columns, strict=True):
            if not column:
                raise self.fail(number, f"empty {name.upper()} column (use '_' for no value)")
        problem = _feats_problem(columns[5])
        if problem:
            raise self.fail(number, f"bad FEATS {columns[5]!r}: {problem}")
        values: dict[str, Any] = {}
        for i, name in enumerate(DEFAULT_FIELDS):
            parser = DEFAULT_FIELD_PARSERS.get(name)
            try:
                values[name] = columns[i] if parser is None else parser(columns, i)
            except ParseException as error:
                label = "bad ID" if name == "id" else f"bad {name.upper()}"
                raise self.fail(number, f"{label}: {error}") from None
        if values["id"] is None:
            raise self.fail(number, f"bad ID {columns[0]!r}")
        return values

    def structure(
        self, rows: Sequence[tuple[int, dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], list[_Surface]]:
        """Check the ID sequence; return the words' fields and the surface tokens."""
        words: list[dict[str, Any]] = []
        tokens: list[_Surface] = []
        open_range: _Range | None = None
        last_empty = (0, 0)
        for number, row in rows:
            ident = row["id"]
            if isinstance(ident, int):
                expected = len(words) + 1
                if ident != expected:
                    order = "does not increase" if ident < expected else "skips"
                    raise self.fail(number, f"word ID {ident} {order}; expected ID {expected}")
                words.append(_word_fields(row, number))
                if open_range is None:
                    tokens.append(_Surface(row["form"], False, (ident - 1,), _space_after(row)))
                elif ident == open_range.last:
                    indices = tuple(range(open_range.first - 1, open_range.last))
                    tokens.append(_Surface(open_range.form, True, indices, open_range.space_after))
                    open_range = None
            elif ident[1] == "-":
                first, _, last = ident
                if open_range is not None:
                    raise self.fail(open_range.line, _uncovered(open_range))
                if first != len(words) + 1 or last <= first:
                    raise self.fail(
                        number,
                        f"bad ID {first}-{last}: a range must start at the next word ID "
                        f"({len(words) + 1}) and cover at least two words",
                    )
                open_range = _Range(first, last, row["form"], _space_after(row), number)
            else:
                head, _, sub = ident
                if head != len(words) or (head == last_empty[0] and sub <= last_empty[1]):
                    raise self.fail(
                        number,
                        f"bad ID {head}.{sub}: an empty node must follow word {head} "
                        f"(last word is {len(words)}) and its IDs must increase",
                    )
                last_empty = (head, sub)
        if open_range is not None:
            raise self.fail(open_range.line, _uncovered(open_range))
        return words, tokens

    def locate(
        self,
        text: str | None,
        tokens: Sequence[_Surface],
        sent_id: str,
        line: int,
    ) -> tuple[str, list[tuple[int, int]]]:
        """Find each token in ``text`` in order; rebuild the text if that fails."""
        forms = [token.form for token in tokens]
        spans = _spans_in(text, forms) if text is not None else None
        if text is not None and spans is not None:
            return text, spans
        if not self.warned:
            self.warned = True
            reason = "no '# text'" if text is None else "'# text' does not match the tokens"
            logger.warning(
                "%s:%d: sentence %s: %s; rebuilding the text from the tokens "
                "(later sentences of this file not reported)",
                self.path,
                line,
                sent_id,
                reason,
            )
        parts: list[str] = []
        spans = []
        start = 0
        for i, token in enumerate(tokens):
            spans.append((start, start + len(token.form)))
            parts.append(token.form)
            start += len(token.form)
            if token.space_after and i < len(tokens) - 1:
                parts.append(" ")
                start += 1
        return "".join(parts), spans


def _word_fields(row: Mapping[str, Any], line: int) -> dict[str, Any]:
    return {
        "index": row["id"],
        "form": row["form"],
        "lemma": row["lemma"],
        "upos": row["upos"],
        "feats": dict(row["feats"] or {}),
        "line": line,
    }


def _space_after(row: Mapping[str, Any]) -> bool:
    misc = row["misc"] or {}
    return bool(misc.get("SpaceAfter") != "No")


def _uncovered(open_range: _Range) -> str:
    return (
        f"multiword token {open_range.first}-{open_range.last} is not followed by words "
        f"{open_range.first} to {open_range.last}"
    )


def _feats_problem(feats: str) -> str | None:
    if feats == "_":
        return None
    parts = feats.split("|")
    if _FEATS.fullmatch(feats) is None:
        for part in parts:
            name, equals, value = part.partition("=")
            if not part:
                return "an empty Name=Value pair (stray '|')"
            if not equals:
                return f"{part!r} has no '='"
            if not name or not value:
                return f"{part!r} has an empty name or value"
        return "not Name=Value pairs joined by '|' (no spaces, one '=' each, no '_' value)"
    names = [part.partition("=")[0] for part in parts]
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        return f"feature {twice!r} appears twice"
    return None


def _spans_in(text: str, forms: Sequence[str]) -> list[tuple[int, int]] | None:
    spans: list[tuple[int, int]] = []
    start = 0
    for form in forms:
        while start < len(text) and text[start].isspace():
            start += 1
        if not text.startswith(form, start):
            return None
        spans.append((start, start + len(form)))
        start += len(form)
    return spans if not text[start:].strip() else None
