"""Fuzz the CoNLL-U reader: any input either reads or fails with our own TreebankError.

Valid PUD sentences are mutated line by line, field by field and byte by byte (lines
deleted, repeated, swapped, cut; fields emptied, cut, filled with tabs, control characters,
odd unicode or broken IDs and ranges; bytes that are not UTF-8), and arbitrary text and
bytes are read too. Everything goes through :func:`load_corpora` (reader, labels and
splits), under both label schemes. An exception other than TreebankError, or a
TreebankError that does not name the file and a line within it, fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xalign.data import pud_files
from xalign.errors import TreebankError
from xalign.treebank.corpus import Corpus, CorpusOptions, load_corpora
from xalign.treebank.reader import Sentence, read_conllu

_LANGUAGES = ("fr", "es", "ar", "zh")
"""Multiword tokens (fr, es, ar), right-to-left script (ar), no spaces (zh)."""


def _seed_blocks(language: str, count: int = 4) -> list[str]:
    (path,) = pud_files([language])
    return path.read_text(encoding="utf-8").split("\n\n")[:count]


_SEEDS = {language: _seed_blocks(language) for language in _LANGUAGES}

_ODD_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\t \r\x0b\x0c\x1c\x85\u2028\u00a0\ufeff#=|_-.,:0123456789")),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
_FIELD_TEXT = st.text(alphabet="0123456789:|=_.-,[]aZé #\u00a0\u3000", max_size=10)
"""Text that keeps the line's ten columns, so that the columns' own parsers see it."""
_BROKEN_IDS = st.sampled_from(
    ["0", "-1", "1-", "-", "3-2", "2-2", "1-1", "1.0", "0.1", "1.1.1", "1-2-3", "1,2", "a", "1e3", "٣",
     "99999999999999999999999", "1-99999999999999999999", "10.99999999999999999999", " 1", "1 ", "+1"]
)  # fmt: skip

_MUTATION = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), _ODD_TEXT),
    st.tuples(st.just("cut_line"), st.integers(0, 10**6), st.integers(0, 200)),
    st.tuples(st.just("field"), st.integers(0, 10**6), st.integers(0, 11), _ODD_TEXT),
    st.tuples(st.just("field"), st.integers(0, 10**6), st.integers(0, 9), _FIELD_TEXT),
    st.tuples(st.just("cut_field"), st.integers(0, 10**6), st.integers(0, 9), st.integers(0, 20)),
    st.tuples(st.just("id"), st.integers(0, 10**6), _BROKEN_IDS),
    st.tuples(st.just("bytes"), st.integers(0, 10**6), st.binary(min_size=1, max_size=6)),
)


def _mutate(text: str, mutation: tuple[object, ...]) -> bytes:
    lines = text.split("\n")
    kind, where = mutation[0], int(str(mutation[1])) % max(len(lines), 1)
    line = lines[where] if lines else ""
    if kind == "delete":
        del lines[where]
    elif kind == "duplicate":
        lines.insert(where, line)
    elif kind == "swap":
        other = int(str(mutation[2])) % max(len(lines), 1)
        lines[where], lines[other] = lines[other], lines[where]
    elif kind == "insert":
        lines.insert(where, str(mutation[2]))
    elif kind == "cut_line":
        lines[where] = line[: int(str(mutation[2]))]
    elif kind in ("field", "cut_field", "id"):
        fields = line.split("\t")
        column = 0 if kind == "id" else int(str(mutation[2])) % (len(fields) + 1)
        if kind == "field":
            new = str(mutation[3])
        elif kind == "cut_field":
            new = fields[column][: int(str(mutation[3]))] if column < len(fields) else ""
        else:
            new = str(mutation[2])
        if column < len(fields):
            fields[column] = new
        else:
            fields.append(new)
        lines[where] = "\t".join(fields)
    elif kind == "bytes":
        raw = "\n".join(lines).encode("utf-8")
        offset = sum(len(part.encode("utf-8")) + 1 for part in lines[:where])
        blob = mutation[2]
        assert isinstance(blob, bytes)
        return raw[:offset] + blob + raw[offset:]
    return "\n".join(lines).encode("utf-8")


def _write(directory: Path, data: bytes, language: str = "fr") -> Path:
    path = directory / f"{language}_fuzz-ud-test.conllu"
    path.write_bytes(data)
    return path


def _check(directory: Path, data: bytes, language: str = "fr") -> None:
    """Read ``data`` as a treebank under both schemes: it reads, or fails only as we mean it to."""
    path = _write(directory, data, language)
    n_lines = max(data.count(b"\n") + (0 if data.endswith(b"\n") else 1), 1)
    for scheme in ("ud", "unimorph"):
        corpora, error = _load(path, scheme)
        if error is not None:
            assert error.path == str(path), error
            assert error.line is None or 1 <= error.line <= n_lines, (error, n_lines)
            assert str(error).startswith(f"{path}:"), error
            continue
        for sentence in corpora[language].sentences:
            _check_sentence(sentence)


def _load(path: Path, scheme: str) -> tuple[dict[str, Corpus], TreebankError | None]:
    """The corpora, or our own error; any other exception propagates and fails the test."""
    try:
        return load_corpora([path], options=CorpusOptions(label_scheme=scheme)), None  # type: ignore[arg-type]
    except TreebankError as error:
        return {}, error


def _check_sentence(sentence: Sentence) -> None:
    assert sentence.words, "a sentence read without words"
    for position, word in enumerate(sentence.words, start=1):
        assert word.index == position
        start, end = word.span
        assert 0 <= start <= end <= len(sentence.text)
    covered = sorted(i for token in sentence.tokens for i in token.word_indices)
    assert covered == list(range(len(sentence.words)))


def _blocks(language: str, count: int) -> str:
    return "\n\n".join(_SEEDS[language][:count]) + "\n\n"


# The same file is rewritten for every example: a function-scoped tmp_path is fine.
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(
    _SETTINGS,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    language=st.sampled_from(_LANGUAGES),
    count=st.integers(1, 3),
    mutations=st.lists(_MUTATION, min_size=1, max_size=4),
)
def test_mutated_pud_sentences_read_or_fail_clearly(
    tmp_path: Path, language: str, count: int, mutations: list[tuple[object, ...]]
) -> None:
    data = _blocks(language, count)
    raw = data.encode("utf-8")
    for mutation in mutations:
        raw = _mutate(raw.decode("utf-8", errors="surrogateescape"), mutation)
        if mutation[0] == "bytes":
            break  # later line edits would re-encode the bytes
    _check(tmp_path, raw, language)


@settings(_SETTINGS, max_examples=150)
@given(data=st.one_of(st.binary(max_size=300), _ODD_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
@example(data=b"1\t_\t_\t_\t_\t_\t_\t_\t_\t_\n")
def test_arbitrary_bytes_read_or_fail_clearly(tmp_path: Path, data: bytes) -> None:
    _check(tmp_path, data)


@settings(_SETTINGS, max_examples=100)
@given(
    lines=st.lists(
        st.lists(st.one_of(_BROKEN_IDS, _ODD_TEXT, st.just("_")), min_size=8, max_size=11).map("\t".join),
        min_size=1,
        max_size=6,
    )
)
def test_random_rows_read_or_fail_clearly(tmp_path: Path, lines: list[str]) -> None:
    _check(tmp_path, ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))


def test_the_seeds_themselves_read(tmp_path: Path) -> None:
    for language in _LANGUAGES:
        sentences = list(read_conllu(_write(tmp_path, _blocks(language, 3).encode("utf-8"), language)))
        assert len(sentences) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1\tx\tx\tX\t_\t_\t0\troot\t_\t_\n\xff\n", "not valid utf-8"),
        (b"1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n1\tde\tde\tADP\t_\t_\t0\troot\t_\t_\n", "multiword token 1-2"),
    ],
)
def test_a_clear_error_names_file_and_line(tmp_path: Path, data: bytes, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(TreebankError, match=message) as caught:
        list(read_conllu(path))
    assert caught.value.path == str(path)
    assert caught.value.line in (1, 2)
