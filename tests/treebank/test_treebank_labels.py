"""Word labels in the UD and UniMorph schemes."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from xalign.errors import XalignError
from xalign.treebank import (
    DEFAULT_ATTRIBUTES,
    UniMorphTable,
    UniMorphTableError,
    Word,
    word_labels,
)

Write = Callable[..., Path]


def _word(feats: dict[str, str]) -> Word:
    return Word(index=1, form="x", lemma="x", upos="NOUN", feats=feats, token_index=0, span=(0, 1), line=1)


@pytest.fixture(scope="module")
def table() -> UniMorphTable:
    return UniMorphTable.load()


def test_default_table_comes_from_the_installed_package(table: UniMorphTable) -> None:
    assert table.mapping["Number", "Plur"] == "PL"
    assert table.mapping["Number", "Sing"] == "SG"
    assert table.mapping["Gender", "Masc"] == "MASC"
    assert table.mapping["Case", "Nom"] == "NOM"
    assert table.mapping["Tense", "Past"] == "PST"
    # Rows with an empty UniMorph cell: known, without counterpart.
    assert table.mapping["Degree", "Pos"] == ""
    assert table.mapping["PronType", "Art"] == ""
    # A row with only two cells and no CRLF.
    assert table.mapping["Case", "Ade"] == "AT+ESS"
    # Bare UPOS rows at the end are not features.
    assert all(feature and value for feature, value in table.mapping)
    assert not any(feature in {"NOUN", "ADV", "PUNCT"} for feature, _ in table.mapping)


def test_tag_drops_empty_and_language_specific_parts(table: UniMorphTable) -> None:
    assert table.tag("Number", "Plur") == "PL"
    assert table.tag("Degree", "Pos") is None
    assert table.tag("Number", "Nope") is None
    assert table.tag("Case", "Add") == "IN+ALL"
    assert table.tag("VerbForm", "Short") is None


def test_ud_labels_are_the_feats_as_written() -> None:
    word = _word({"Number": "Plur", "Number[psor]": "Sing", "Person": "2,3"})
    assert word_labels(word) == {"Number": "Plur", "Number[psor]": "Sing", "Person": "2,3"}
    assert word_labels(word, features=["Person", "Case"]) == {"Person": "2,3"}
    assert word_labels(_word({})) == {}


def test_unimorph_labels_keep_ud_names_and_drop_what_has_no_tag(table: UniMorphTable) -> None:
    word = _word(
        {
            "Number": "Plur",
            "Gender": "Masc",
            "Degree": "Pos",
            "Person": "2,3",
            "Number[psor]": "Sing",
            "Foo": "Bar",
        }
    )
    assert word_labels(word, scheme="unimorph", unimorph=table) == {
        "Number": "PL",
        "Gender": "MASC",
    }
    assert word_labels(word, scheme="unimorph") == {"Number": "PL", "Gender": "MASC"}
    assert word_labels(word, scheme="unimorph", features={"Gender"}) == {"Gender": "MASC"}


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        word_labels(_word({}), scheme="upos")  # type: ignore[arg-type]


def test_load_a_given_table(write: Write) -> None:
    path = write(
        b"UD\tUniMorph\tIssue\tMessage\r\nNumber=Plur\tPL\t\t\r\nDegree=Pos\t\tYes\tnote\r\n"
        b"Case=Loc\r\nNOUN\tN\t\r\n",
        "table.tsv",
    )
    assert UniMorphTable.load(path).mapping == {
        ("Number", "Plur"): "PL",
        ("Degree", "Pos"): "",
        ("Case", "Loc"): "",
    }


def test_conflicting_rows_are_refused(write: Write) -> None:
    path = write("UD\tUniMorph\nNumber=Plur\tPL\nNumber=Plur\tSG\n", "table.tsv")
    with pytest.raises(UniMorphTableError, match=r"table\.tsv:3: Number=Plur mapped twice"):
        UniMorphTable.load(path)


def test_missing_package_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(UniMorphTableError, match="pip install ud-compatibility") as caught:
        UniMorphTable.load()
    assert isinstance(caught.value, XalignError)


def test_default_attributes_are_ud_feature_names(table: UniMorphTable) -> None:
    assert len(set(DEFAULT_ATTRIBUTES)) == len(DEFAULT_ATTRIBUTES) == 13
    features = {feature for feature, _ in table.mapping}
    assert {"Number", "Gender", "Case", "Tense", "Mood", "Aspect"} <= features
