"""Property tests: generated CoNLL-U reads back exactly what was generated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xalign.treebank import read_conllu

Write = Callable[..., Path]
Row = Callable[..., str]

_FORMS = st.text(alphabet="abcdéßж中'.,-_", min_size=1, max_size=6)
_FEATS = st.dictionaries(
    st.sampled_from(["Number", "Gender", "Case", "Number[psor]", "Person", "PronType"]),
    st.sampled_from(["Sing", "Plur", "Masc", "Nom", "2,3", "Prs"]),
    max_size=3,
)


@dataclass(frozen=True)
class GenWord:
    form: str
    lemma: str
    upos: str
    feats: dict[str, str]


@dataclass(frozen=True)
class GenToken:
    """A plain word (one word, no form of its own) or a multiword token."""

    form: str | None
    words: tuple[GenWord, ...]
    space_after: bool
    empty_nodes_after: int


_WORDS = st.builds(
    GenWord,
    form=_FORMS,
    lemma=_FORMS | st.just("_"),
    upos=st.sampled_from(["NOUN", "VERB", "ADP", "DET", "PUNCT", "_"]),
    feats=_FEATS,
)
_TOKENS = st.one_of(
    st.builds(
        GenToken,
        form=st.none(),
        words=st.tuples(_WORDS),
        space_after=st.booleans(),
        empty_nodes_after=st.integers(0, 2),
    ),
    st.builds(
        GenToken,
        form=_FORMS,
        words=st.lists(_WORDS, min_size=2, max_size=3).map(tuple),
        space_after=st.booleans(),
        empty_nodes_after=st.just(0),
    ),
)
_SENTENCES = st.lists(
    st.tuples(st.lists(_TOKENS, min_size=1, max_size=6), st.booleans()), min_size=1, max_size=3
)


def _surface(token: GenToken) -> str:
    return token.form if token.form is not None else token.words[0].form


def _text(tokens: list[GenToken]) -> str:
    parts = []
    for i, token in enumerate(tokens):
        parts.append(_surface(token))
        if token.space_after and i < len(tokens) - 1:
            parts.append(" ")
    return "".join(parts)


def _block(number: int, tokens: list[GenToken], with_text: bool, row: Row) -> str:
    lines = [f"# sent_id = s{number}"]
    if with_text:
        lines.append(f"# text = {_text(tokens)}")
    index = 0
    for token in tokens:
        misc = "_" if token.space_after else "SpaceAfter=No"
        if token.form is not None:
            lines.append(row(f"{index + 1}-{index + len(token.words)}", token.form, misc=misc))
        for word in token.words:
            index += 1
            feats = "|".join(f"{k}={v}" for k, v in sorted(word.feats.items())) or "_"
            word_misc = misc if token.form is None else "_"
            lines.append(row(str(index), word.form, word.lemma, word.upos, feats, word_misc))
        lines.extend(row(f"{index}.{e + 1}", "e") for e in range(token.empty_nodes_after))
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=_SENTENCES)
def test_generated_conllu_reads_back(
    sentences: list[tuple[list[GenToken], bool]], write: Write, row: Row
) -> None:
    content = "\n".join(_block(n, t, with_text, row) for n, (t, with_text) in enumerate(sentences))
    path = write(content)
    read = list(read_conllu(path))
    assert len(read) == len(sentences)
    for number, (sentence, (tokens, _)) in enumerate(zip(read, sentences, strict=True)):
        assert sentence.sent_id == f"s{number}"
        assert sentence.text == _text(tokens)
        expected_words = [w for t in tokens for w in t.words]
        assert [(w.form, w.lemma, w.upos, dict(w.feats)) for w in sentence.words] == [
            (w.form, w.lemma, w.upos, w.feats) for w in expected_words
        ]
        assert [w.index for w in sentence.words] == list(range(1, len(expected_words) + 1))
        assert [t.form for t in sentence.tokens] == [_surface(t) for t in tokens]
        assert [t.is_multiword for t in sentence.tokens] == [t.form is not None for t in tokens]
        assert [len(t.word_indices) for t in sentence.tokens] == [len(t.words) for t in tokens]
        for word in sentence.words:
            token = sentence.tokens[word.token_index]
            assert sentence.text[slice(*word.span)] == token.form
