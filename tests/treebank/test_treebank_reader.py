"""The CoNLL-U reader: shipped files, multiword tokens, text fallback, malformed input."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from xalign.errors import TreebankError
from xalign.treebank import (
    Sentence,
    language_of,
    read_conllu,
    split_of,
    treebank_name,
)

Write = Callable[..., Path]
Row = Callable[..., str]

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(REPO.glob("xalign/data/**/*.conllu"))


def _check_sentence(sentence: Sentence) -> None:
    assert sentence.sent_id == sentence.metadata["sent_id"]
    assert sentence.text == sentence.metadata["text"]
    assert sentence.words, sentence.sent_id
    covered = sorted(i for token in sentence.tokens for i in token.word_indices)
    assert covered == list(range(len(sentence.words)))
    for position, word in enumerate(sentence.words):
        assert word.index == position + 1
        token = sentence.tokens[word.token_index]
        assert position in token.word_indices
        start, end = word.span
        assert 0 <= start < end <= len(sentence.text)
        assert word.span == token.span
        assert sentence.text[start:end] == token.form


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.name) for p in SHIPPED]
    or [pytest.param(None, marks=pytest.mark.skip(reason="no shipped xalign/data/**/*.conllu"))],
)
def test_shipped_file_reads_with_consistent_spans(path: Path) -> None:
    sentences = list(read_conllu(path))
    assert sentences
    assert len({s.sent_id for s in sentences}) == len(sentences)
    for sentence in sentences:
        _check_sentence(sentence)


FRENCH_ROWS = [
    ("1", "Il", "il", "PRON", "Gender=Masc|Number=Sing|Person=3|PronType=Prs"),
    ("2", "parle", "parler", "VERB", "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"),
    ("2.1", "parle", "parler", "VERB", "_"),
    ("3-4", "du", "_", "_", "_"),
    ("3", "de", "de", "ADP", "_"),
    ("4", "le", "le", "DET", "Definite=Def|Gender=Masc|Number=Sing|PronType=Art"),
    ("5", "chat", "chat", "NOUN", "Gender=Masc|Number=Sing", "SpaceAfter=No"),
]


def _french(row: Row) -> str:
    comments = ["# newdoc id = doc1", "# sent_id = fr-1", "# text = Il parle du chat."]
    rows = [row(*r) for r in FRENCH_ROWS]
    rows.append(row("6", ".", ".", "PUNCT", "_", "SpaceAfter=No"))
    return "\n".join([*comments, *rows]) + "\n\n"


def test_multiword_token_words_keep_labels_and_share_span(write: Write, row: Row) -> None:
    path = write(_french(row), "fr_toy-ud-train.conllu")
    (sentence,) = read_conllu(path)
    assert sentence.sent_id == "fr-1"
    assert sentence.metadata["newdoc id"] == "doc1"
    assert sentence.line == 1
    assert [w.form for w in sentence.words] == ["Il", "parle", "de", "le", "chat", "."]
    assert [w.index for w in sentence.words] == [1, 2, 3, 4, 5, 6]
    assert [w.line for w in sentence.words] == [4, 5, 8, 9, 10, 11]
    de, le = sentence.words[2], sentence.words[3]
    assert de.feats == {}
    assert de.upos == "ADP"
    assert le.feats["Definite"] == "Def"
    assert le.lemma == "le"
    assert de.token_index == le.token_index == 2
    assert de.span == le.span == (9, 11)
    assert sentence.text[slice(*de.span)] == "du"
    mwt = sentence.tokens[2]
    assert (mwt.form, mwt.is_multiword, mwt.word_indices) == ("du", True, (2, 3))
    assert [t.form for t in sentence.tokens] == ["Il", "parle", "du", "chat", "."]
    assert not any(t.is_multiword for i, t in enumerate(sentence.tokens) if i != 2)


def test_sentence_pickles(write: Write, row: Row) -> None:
    (sentence,) = read_conllu(write(_french(row)))
    assert pickle.loads(pickle.dumps(sentence)) == sentence


def test_missing_text_is_rebuilt_honouring_space_after(
    write: Write, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    block = "\n".join(
        [
            row("1", "Hello", misc="SpaceAfter=No"),
            row("2", ","),
            row("3-4", "it's"),
            row("3", "it"),
            row("4", "'s", misc="SpaceAfter=No"),
            row("5", "me", misc="SpaceAfter=No"),
            row("6", "!"),
        ]
    )
    path = write(f"{block}\n\n# sent_id = b\n{block}\n\n")
    with caplog.at_level(logging.WARNING, logger="xalign.treebank.reader"):
        first, second = read_conllu(path)
    assert first.text == second.text == "Hello, it's me!"
    assert first.sent_id == f"{path.stem}:1"
    assert second.sent_id == "b"
    assert [first.text[slice(*t.span)] for t in first.tokens] == ["Hello", ",", "it's", "me", "!"]
    assert first.words[3].span == (7, 11)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert path.name in warnings[0].getMessage()


def test_text_that_does_not_match_tokens_is_rebuilt(
    write: Write, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    path = write("# text = Goodbye world\n" + row("1", "Hello") + "\n" + row("2", "world") + "\n")
    with caplog.at_level(logging.WARNING):
        (sentence,) = read_conllu(path)
    assert sentence.text == "Hello world"
    assert sentence.metadata["text"] == "Goodbye world"
    assert "does not match" in caplog.text


def test_text_with_extra_spaces_keeps_the_original(write: Write, row: Row) -> None:
    path = write("# text =  a  b\n" + row("1", "a") + "\n" + row("2", "b") + "\n\n")
    (sentence,) = read_conllu(path)
    # conllu strips the value; the inner double space stays.
    assert sentence.text == "a  b"
    assert [w.span for w in sentence.words] == [(0, 1), (3, 4)]


def test_crlf_and_bom(write: Write, row: Row) -> None:
    text = "# text = a b\r\n" + row("1", "a") + "\r\n" + row("2", "b") + "\r\n\r\n"
    (sentence,) = read_conllu(write(b"\xef\xbb\xbf" + text.encode()))
    assert sentence.text == "a b"
    assert sentence.metadata == {"text": "a b"}
    assert sentence.words[1].form == "b"


def test_other_encoding(write: Write, row: Row) -> None:
    text = "# text = été\n" + row("1", "été") + "\n"
    (sentence,) = read_conllu(write(text.encode("latin-1")), encoding="latin-1")
    assert sentence.words[0].form == "été"
    with pytest.raises(ValueError, match="ASCII-compatible"):
        next(read_conllu(write(text), encoding="utf-16"))


@pytest.mark.parametrize(
    ("name", "treebank", "language", "split"),
    [
        ("en_pud-ud-test.conllu", "en_pud", "en", "test"),
        ("data/UD_French-GSD/fr_gsd-ud-dev.conllu", "fr_gsd", "fr", "dev"),
        ("de_hdt-ud-train-a-1.conllu", "de_hdt", "de", "train"),
        ("yue_hk-ud-test.conllu", "yue_hk", "yue", "test"),
    ],
)
def test_names_from_ud_file_names(name: str, treebank: str, language: str, split: str) -> None:
    assert treebank_name(name) == treebank
    assert language_of(Path(name)) == language
    assert split_of(name) == split


def test_names_from_other_file_names() -> None:
    assert treebank_name("mine.conllu") == "mine"
    assert split_of("mine.conllu") is None
    assert split_of("contest-ud.conllu") is None
    assert split_of("my_train.conllu") == "train"
    with pytest.raises(TreebankError, match=r"mine\.conllu: cannot tell the language"):
        language_of("mine.conllu")


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n\n"


def _words(row: Row, *idents: str, feats: dict[str, str] | None = None) -> list[str]:
    return [row(i, f"w{i}", feats=(feats or {}).get(i, "_")) for i in idents]


# case -> (content from the `row` helper, line of the error, fragment of the message)
MALFORMED: dict[str, tuple[Callable[[Row], str], int, str]] = {
    "nine columns": (
        lambda r: _lines("# text = a b", "1\ta\t_\tX\t_\t_\t0\troot\t_", r("2", "b")),
        2,
        "expected 10 tab-separated columns, found 9",
    ),
    "spaces not tabs": (lambda r: _lines("1 a _ X _ _ 0 root _ _"), 1, "found 1"),
    "bad ID": (lambda r: _lines("# c = d", r("1x", "a")), 2, "bad ID"),
    "underscore ID": (lambda r: _lines(r("1", "a"), r("_", "b")), 2, "bad ID '_'"),
    "zero ID": (lambda r: _lines(*_words(r, "0", "1")), 1, "expected ID 1"),
    "repeated ID": (lambda r: _lines(*_words(r, "1", "2", "2")), 3, "does not increase"),
    "decreasing ID": (lambda r: _lines(*_words(r, "1", "2", "3", "1")), 4, "does not increase"),
    "skipped ID": (lambda r: _lines(*_words(r, "1", "3")), 2, "skips"),
    "reversed range": (lambda r: _lines(*_words(r, "1", "3-2", "2", "3")), 2, "bad ID"),
    "range of one": (lambda r: _lines(*_words(r, "1-1", "1")), 1, "bad ID 1-1"),
    "range not at next word": (
        lambda r: _lines(*_words(r, "1", "3-4", "2", "3", "4")),
        2,
        "start at the next word ID (2)",
    ),
    "range not covered at end": (
        lambda r: _lines(*_words(r, "1", "2-3", "2")),
        2,
        "not followed by words 2 to 3",
    ),
    "range cut by a range": (
        lambda r: _lines(*_words(r, "1-3", "1", "2", "3-4", "3", "4")),
        1,
        "not followed by words 1 to 3",
    ),
    "empty node out of place": (lambda r: _lines(*_words(r, "1", "2", "1.1")), 3, "empty node"),
    "empty nodes not increasing": (
        lambda r: _lines(*_words(r, "1", "1.2", "1.1", "2")),
        3,
        "empty node",
    ),
    "feats without =": (
        lambda r: _lines(*_words(r, "1", "2", "3", feats={"3": "Number"})),
        3,
        "has no '='",
    ),
    "feats empty value": (
        lambda r: _lines(*_words(r, "1", feats={"1": "Case=Nom|Number="})),
        1,
        "'Number=' has an empty name or value",
    ),
    "feats stray bar": (
        lambda r: _lines(*_words(r, "1", feats={"1": "Case=Nom|"})),
        1,
        "stray '|'",
    ),
    "feats duplicate": (
        lambda r: _lines(*_words(r, "1", "2", feats={"2": "Number=Sing|Number=Plur"})),
        2,
        "'Number' appears twice",
    ),
    "feats space": (
        lambda r: _lines(*_words(r, "1", feats={"1": "Number=Sing|Case =Nom"})),
        1,
        "not Name=Value",
    ),
    "empty column": (lambda r: _lines(r("1", "a"), r("2", "b", lemma="")), 2, "empty LEMMA"),
    "bad HEAD (conllu)": (lambda r: _lines(r("1", "a"), r("2", "b", head="x")), 2, "bad HEAD"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_input_names_file_and_line(case: str, write: Write, row: Row) -> None:
    content, line, fragment = MALFORMED[case]
    path = write(content(row))
    with pytest.raises(TreebankError) as caught:
        list(read_conllu(path))
    assert caught.value.line == line
    assert f"{path}:{line}: " in str(caught.value)
    assert fragment in caught.value.message


def test_error_in_a_later_sentence_counts_lines_across_blocks(write: Write, row: Row) -> None:
    good = "# text = a\n" + row("1", "a") + "\n"
    path = write(good + "\n" + good + "\n\n\n" + "# text = b\n" + row("1", "b", feats="X") + "\n")
    with pytest.raises(TreebankError, match=r":10: bad FEATS 'X'"):
        list(read_conllu(path))


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"", 1, "file is empty"),
        (b"\n\n  \n", 3, "no sentences"),
        (b"# sent_id = 1\n# text = a\n", 1, "no word lines"),
        (b"\n\n# newdoc id = x\n\n", 3, "no word lines"),
        ("# text = é\n1\té\t_\tX\t_\t_\t0\troot\t_\t_\n".encode("latin-1"), 1, "not valid utf-8"),
        (
            b"# text = a\n1\ta\t_\tX\t_\t_\t0\troot\t_\t_\n\n# text = \xe9t\xe9\n",
            4,
            "not valid utf-8",
        ),
        (b"# text = a\n1\ta\t_\tX\t_\t_\t0\troot\t_\t_\n\n# text = \xc3", 4, "not valid utf-8"),
    ],
    ids=["empty", "blank", "comments only", "comment block", "latin-1", "latin-1 later", "cut"],
)
def test_unreadable_files_name_file_and_line(content: bytes, line: int, fragment: str, write: Write) -> None:
    path = write(content)
    with pytest.raises(TreebankError) as caught:
        list(read_conllu(path))
    assert caught.value.line == line
    assert f"{path}:{line}: " in str(caught.value)
    assert fragment in caught.value.message


def test_sentences_before_an_error_are_yielded(write: Write, row: Row) -> None:
    path = write(row("1", "a") + "\n\n" + row("2", "b") + "\n")
    sentences = read_conllu(path)
    assert next(sentences).words[0].form == "a"
    with pytest.raises(TreebankError, match=":3: word ID 2 skips"):
        next(sentences)
