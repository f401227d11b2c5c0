"""Corpora: files grouped by language, labels and splits for every word."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.treebank.conftest import MakeRow, WriteFile
from xalign.data import PUD_LANGUAGES, pud_files
from xalign.treebank.corpus import CorpusOptions, load_corpora
from xalign.treebank.splits import lemma_key


def test_embedded_sample_is_parallel() -> None:
    corpora = load_corpora(pud_files())
    assert tuple(corpora) == PUD_LANGUAGES
    ids = {lang: [s.sent_id for s in corpus.sentences] for lang, corpus in corpora.items()}
    assert all(len(v) == 500 for v in ids.values())
    assert all(v == ids["en"] for v in ids.values())


def test_every_word_has_labels_and_a_split() -> None:
    (corpus,) = load_corpora(pud_files(["es"])).values()
    n_words = sum(len(s.words) for s in corpus.sentences)
    assert corpus.n_words == n_words == len(corpus.labels)
    assert set(corpus.splits) == {"train", "dev", "test"}
    words = [w for s in corpus.sentences for w in s.words]
    assert corpus.labels[0] == dict(words[0].feats)
    assert corpus.treebanks == ("es_pud",)
    assert corpus.attributes[:2] == ("Number", "Gender")


def _file(write: WriteFile, row: MakeRow, name: str, lemmas: list[str]) -> Path:
    rows = [row(str(i), lemma, lemma, "NOUN", "Number=Sing") for i, lemma in enumerate(lemmas, start=1)]
    return write(f"# sent_id = {name}\n# text = {' '.join(lemmas)}\n" + "\n".join(rows) + "\n\n", name)


def test_lemma_split_pools_all_files_of_a_language(write: WriteFile, row: MakeRow) -> None:
    a = _file(write, row, "xx_one-ud-test.conllu", [f"w{i}" for i in range(40)])
    b = _file(write, row, "xx_two-ud-test.conllu", [f"w{i}" for i in range(20, 60)])
    c = _file(write, row, "yy_one-ud-test.conllu", ["w1", "w2", "w3"])
    corpora = load_corpora([a, b, c])
    assert list(corpora) == ["xx", "yy"]
    xx = corpora["xx"]
    assert xx.treebanks == ("xx_one", "xx_two")
    split_of: dict[str, set[str]] = {}
    words = [w for s in xx.sentences for w in s.words]
    for word, split in zip(words, xx.splits, strict=True):
        split_of.setdefault(lemma_key(word), set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())


def test_unimorph_and_feature_selection() -> None:
    options = CorpusOptions(label_scheme="unimorph", features=("Number",))
    (corpus,) = load_corpora(pud_files(["pt"]), options=options).values()
    assert corpus.attributes == ("Number",)
    assert {v for labels in corpus.labels for v in labels.values()} <= {"SG", "PL"}


def test_own_split_mode_needs_split_in_the_name(write: WriteFile, row: MakeRow) -> None:
    from xalign.errors import TreebankError

    path = _file(write, row, "xx_one-ud-all.conllu", ["a"])
    with pytest.raises(TreebankError, match=r"takes each file.s split from its name, and this name has none"):
        load_corpora([path], options=CorpusOptions(split_mode="own"))


def test_a_file_of_any_name_takes_the_language_it_is_given(tmp_path: Path) -> None:
    from xalign.data import pud_files
    from xalign.errors import TreebankError
    from xalign.treebank.corpus import load_corpora

    (ar,) = pud_files(["ar"])
    renamed = tmp_path / "my-arabic.conllu"
    renamed.write_bytes(ar.read_bytes())
    corpora = load_corpora([renamed, ar], file_languages={str(renamed): "ar"})
    assert list(corpora) == ["ar"]
    assert corpora["ar"].files == (str(renamed), str(ar))
    assert corpora["ar"].treebanks == ("my-arabic", "ar_pud")
    with pytest.raises(TreebankError, match="cannot tell the language"):
        load_corpora([renamed])
    with pytest.raises(TreebankError, match="'a r' is not a language code"):
        load_corpora([renamed], file_languages={str(renamed): "a r"})
