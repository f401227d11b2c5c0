"""Word -> subword alignment, with a fake tokenizer language: TOKEN_3 is a word of three subwords."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xalign.extract.encode import encode_corpus, word_positions
from xalign.treebank.corpus import load_corpora


class FakeTokenizer:
    """``TOKEN_k`` -> k subwords (the first carries the leading space, as byte-level BPE does);
    ``DROPPED`` -> no subword (as characters a tokenizer normalises away); any other word ->
    one subword; punctuation -> its own subword."""

    def __call__(
        self, text: str, *, add_special_tokens: bool = False, return_offsets_mapping: bool = False
    ) -> dict[str, Any]:
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for match in re.finditer(r"\s*(TOKEN_(\d+)|\w+|[^\w\s])", text):
            if match.group(1) == "DROPPED":
                continue
            start, end = match.start(1), match.end(1)
            pieces = int(match.group(2)) if match.group(2) else 1
            # The first subword's offsets include the leading whitespace.
            bounds = np.linspace(start, end, pieces + 1).astype(int)
            for i in range(pieces):
                offsets.append((match.start() if i == 0 else int(bounds[i]), int(bounds[i + 1])))
                ids.append(len(ids) + 10)
        out: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets
        return out


def _treebank(tmp_path: Path, rows: list[list[str]], text: str | None) -> Path:
    lines = ["# sent_id = s1"] + ([f"# text = {text}"] if text is not None else [])
    for row in rows:
        lines.append(
            "\t".join(
                [
                    row[0],
                    row[1],
                    row[1].lower(),
                    "X",
                    "_",
                    "_",
                    "0" if row[0] == "1" else "1",
                    "dep",
                    "_",
                    row[2] if len(row) > 2 else "_",
                ]
            )
        )
    path = tmp_path / "xx_fake-ud-test.conllu"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def _encode(path: Path, **kwargs: Any) -> Any:
    (corpus,) = load_corpora([path]).values()
    return encode_corpus(corpus, FakeTokenizer(), **kwargs)


def test_token_k_words_get_their_k_subwords(tmp_path: Path) -> None:
    path = _treebank(
        tmp_path, [["1", "a"], ["2", "TOKEN_3"], ["3", "b", "SpaceAfter=No"], ["4", "."]], "a TOKEN_3 b."
    )
    encoded = _encode(path)
    assert [p.tolist() for p in encoded.word_positions_of(0)] == [[0], [1, 2, 3], [4], [5]]
    assert encoded.subwords_per_word.tolist() == [1, 3, 1, 1]
    assert encoded.subword_word().tolist() == [0, 1, 1, 1, 2, 3]


def test_multiword_token_words_share_the_surface_subwords(tmp_path: Path) -> None:
    rows = [["1", "a"], ["2-3", "TOKEN_2"], ["2", "de"], ["3", "le"], ["4", "b"]]
    path = _treebank(tmp_path, rows, "a TOKEN_2 b")
    encoded = _encode(path)
    assert [p.tolist() for p in encoded.word_positions_of(0)] == [[0], [1, 2], [1, 2], [3]]


def test_reference_context_tokenises_each_word_alone(tmp_path: Path) -> None:
    rows = [["1", "a"], ["2-3", "TOKEN_2"], ["2", "TOKEN_2"], ["3", "le"], ["4", "b"]]
    path = _treebank(tmp_path, rows, "a TOKEN_2 b")
    encoded = _encode(path, context="word")
    assert [p.tolist() for p in encoded.word_positions_of(0)] == [[0], [1, 2], [3], [4]]
    assert encoded.n_subwords == 5


def test_surface_tokens_are_encoded_as_the_reference_did(tmp_path: Path) -> None:
    from xalign.treebank.corpus import CorpusOptions

    rows = [["1", "a"], ["2-3", "TOKEN_3"], ["2", "TOKEN_2"], ["3", "le"], ["4", "b"]]
    path = _treebank(tmp_path, rows, "a TOKEN_3 b")
    (corpus,) = load_corpora([path], options=CorpusOptions(units="tokens")).values()
    for context in ("sentence", "word"):
        encoded = encode_corpus(corpus, FakeTokenizer(), context=context)  # type: ignore[arg-type]
        assert [p.tolist() for p in encoded.word_positions_of(0)] == [[0], [1, 2, 3], [4]]


def test_long_sentences_keep_every_subword_and_are_counted_as_windowed(tmp_path: Path) -> None:
    path = _treebank(tmp_path, [["1", "a"], ["2", "TOKEN_3"], ["3", "b"]], "a TOKEN_3 b")
    encoded = _encode(path)
    assert [p.tolist() for p in encoded.word_positions_of(0)] == [[0], [1, 2, 3], [4]]
    assert encoded.sentence_lengths.tolist() == [5]
    assert encoded.windowed_sentences(2) == 1
    assert encoded.windowed_sentences(5) == 0
    assert encoded.unencoded_words.tolist() == []


@pytest.mark.parametrize("context", ["sentence", "word"])
def test_a_word_with_no_subword_is_reported(tmp_path: Path, context: str) -> None:
    path = _treebank(tmp_path, [["1", "a"], ["2", "DROPPED"], ["3", "b"]], "a DROPPED b")
    encoded = _encode(path, context=context)
    assert encoded.subwords_per_word.tolist() == [1, 0, 1]
    assert encoded.unencoded_words.tolist() == [1]


def test_a_subword_straddling_two_words_belongs_to_both() -> None:
    # "ab" tokenised as "a" + "b," where the word boundary falls inside the second subword.
    assert word_positions([(0, 1), (1, 3)], [(0, 2), (2, 3)]) == [[0, 1], [1]]
    assert word_positions([(0, 0), (0, 2)], [(0, 2)]) == [[1]]  # special tokens are never pooled


@given(st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_every_subword_of_a_token_k_sentence_lands_in_its_word(pieces: list[int]) -> None:
    text = " ".join(f"TOKEN_{k}" for k in pieces)
    encoded = FakeTokenizer()(text, return_offsets_mapping=True)
    spans, position = [], 0
    for k in pieces:
        start = text.index(f"TOKEN_{k}", position)
        spans.append((start, start + len(f"TOKEN_{k}")))
        position = spans[-1][1]
    got = word_positions(encoded["offset_mapping"], spans)
    expected, first = [], 0
    for k in pieces:
        expected.append(list(range(first, first + k)))
        first += k
    assert got == expected


@pytest.mark.parametrize("context", ["sentence", "word"])
def test_embedded_sample_aligns_every_word(context: str) -> None:
    from xalign.data import pud_files

    (corpus,) = load_corpora(pud_files(["fr"])).values()
    encoded = encode_corpus(corpus, FakeTokenizer(), context=context)  # type: ignore[arg-type]
    assert encoded.n_words == corpus.n_words
    assert (encoded.subwords_per_word > 0).all()


def test_words_without_a_subword_are_counted_per_file_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from xalign.extract import ExtractConfig
    from xalign.extract.run import _warn_coverage, encoding_coverage

    path = _treebank(tmp_path, [["1", "a"], ["2", "DROPPED"], ["3", "TOKEN_9"]], "a DROPPED TOKEN_9")
    (corpus,) = load_corpora([path]).values()
    config = ExtractConfig(model_id="fake", max_length=4)
    coverage = encoding_coverage(corpus, encode_corpus(corpus, FakeTokenizer()), config)
    assert coverage.unencoded_by_file == {str(path): 1}
    assert coverage.unencoded_words == 1
    assert (coverage.windowed_sentences, coverage.longest) == (1, 10)
    with caplog.at_level("INFO", logger="xalign.extract.run"):
        _warn_coverage("xx", coverage, config)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"xx: 1 word(s) of {path} produce no subword with this tokenizer; their vectors are NaN "
        "and probing leaves them out"
    ]
    assert any(
        "run in overlapping windows with 2 subwords of left context" in r.getMessage() for r in caplog.records
    )
