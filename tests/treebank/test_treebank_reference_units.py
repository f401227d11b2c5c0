"""The reference's labelling choices: POS, surface tokens, ud-compatibility's converter."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.treebank.conftest import MakeRow, WriteFile
from xalign.data import pud_files
from xalign.errors import TreebankError
from xalign.treebank.corpus import CorpusOptions, load_corpora
from xalign.treebank.surface import merge_labels
from xalign.treebank.unimorph import UNIMORPH_DIMENSIONS, convert_file, group_features


def _contraction(write: WriteFile, row: MakeRow) -> Path:
    text = "\n".join(
        [
            "# sent_id = s1",
            "# text = du pain",
            row("1-2", "du"),
            row("1", "de", "de", "ADP", "_", head="3"),
            row("2", "le", "le", "DET", "Definite=Def|Gender=Masc|Number=Sing", head="3"),
            row("3", "pain", "pain", "NOUN", "Gender=Masc|Number=Sing", head="0"),
        ]
    )
    return write(text + "\n\n", "fr_toy-ud-test.conllu")


def test_pos_is_an_attribute_only_when_asked(write: WriteFile, row: MakeRow) -> None:
    path = _contraction(write, row)
    (plain,) = load_corpora([path]).values()
    (with_pos,) = load_corpora([path], options=CorpusOptions(pos=True)).values()
    assert "POS" not in plain.attributes
    assert [labels.get("POS") for labels in with_pos.labels] == ["ADP", "DET", "NOUN"]
    (only,) = load_corpora([path], options=CorpusOptions(pos=True, features=("POS",))).values()
    assert only.attributes == ("POS",)


def test_surface_tokens_keep_a_contraction_whole_with_merged_labels(write: WriteFile, row: MakeRow) -> None:
    path = _contraction(write, row)
    (words,) = load_corpora([path], options=CorpusOptions(pos=True)).values()
    (tokens,) = load_corpora([path], options=CorpusOptions(pos=True, units="tokens")).values()
    assert [w.form for w in words.sentences[0].words] == ["de", "le", "pain"]
    assert [w.form for w in tokens.sentences[0].words] == ["du", "pain"]
    assert tokens.n_words == len(tokens.labels) == len(tokens.splits) == 2
    # "du": POS is carried by both words, so it is dropped; "le"'s features are kept.
    assert tokens.labels[0] == {"Definite": "Def", "Gender": "Masc", "Number": "Sing"}
    assert tokens.labels[1] == {"Gender": "Masc", "Number": "Sing", "POS": "NOUN"}
    du = tokens.sentences[0].words[0]
    assert du.span == words.sentences[0].words[0].span == (0, 2)
    assert tokens.sentences[0].tokens[1].word_indices == (1,)


def test_merge_keeps_an_attribute_only_one_word_has() -> None:
    assert merge_labels([{"Number": "Sing"}, {"Number": "Sing", "Case": "Gen"}]) == {"Case": "Gen"}
    assert merge_labels([{}, {"Gender": "Fem"}]) == {"Gender": "Fem"}


@pytest.mark.parametrize(
    ("bundle", "expected"),
    [
        ("V;IND;PRS;3;SG", {"POS": "V", "Mood": "IND", "Tense": "PRS", "Person": "3", "Number": "SG"}),
        ("N;{SG/PL};MASC", {"POS": "N", "Gender": "MASC"}),
        ("N;IN+ALL;LGSPEC1", {"POS": "N", "Case": "ALL+IN"}),
        ("V;PST+PRF", {"POS": "V", "Tense": "PST+PRF"}),
        ("ADJ;{CMPR}", {"POS": "ADJ", "Comparison": "CMPR"}),
        ("N;NDEF;PSS3S", {"POS": "N", "Definiteness": "INDF", "Possession": "PSS3S"}),
        ("V;ARGER3S", {"POS": "V", "ArgumentMarking": "ER3S"}),
        ("N;SG+NOM", {"POS": "N"}),
        ("_", {}),
    ],
)
def test_grouping_into_unimorph_dimensions(bundle: str, expected: dict[str, str]) -> None:
    assert group_features(bundle) == expected


def test_every_feature_has_one_dimension() -> None:
    values = [v for vs in UNIMORPH_DIMENSIONS.values() for v in vs]
    assert len(values) == len(set(values) - {"POS"}) + 1  # POS: Part of Speech vs Polarity's POS
    assert {"Number", "Gender", "Case", "Tense", "POS"} <= set(UNIMORPH_DIMENSIONS)


def test_converter_output_on_shipped_pud_with_its_french_rules() -> None:
    (path,) = pud_files(["fr"])
    bundles = convert_file(path, "fr")
    options = CorpusOptions(label_scheme="unimorph-converter", pos=True)
    (corpus,) = load_corpora([path], options=options).values()
    flat = [b for sentence in bundles for b in sentence]
    assert len(flat) == corpus.n_words
    assert [group_features(b) for b in flat] == list(corpus.labels)
    words = [w for s in corpus.sentences for w in s.words]
    past_verbs = [
        (w, set(b.split(";")))
        for w, b in zip(words, flat, strict=True)
        if w.upos == "VERB" and w.feats.get("Tense") == "Past" and w.feats.get("VerbForm") == "Fin"
    ]
    assert past_verbs
    # FrenchTranslator adds PFV to finite past verbs and drops FIN: the language rules ran.
    assert all("PFV" in tags and "FIN" not in tags for _, tags in past_verbs)
    nouns = [labels for w, labels in zip(words, corpus.labels, strict=True) if w.upos == "NOUN"]
    assert {labels.get("POS") for labels in nouns} == {"N"}
    assert {"Number", "Gender", "Tense", "POS"} <= set(corpus.attributes)


def test_converter_without_language_rules_still_converts() -> None:
    (path,) = pud_files(["id"])
    bundles = convert_file(path, "id")
    assert len(bundles) == 500
    assert any("N" in b.split(";") for sentence in bundles for b in sentence)


def test_converter_failure_names_the_file(write: WriteFile) -> None:
    path = write("1\tonly-two-columns\n\n", "xx_bad-ud-test.conllu")
    with pytest.raises(TreebankError, match=r"xx_bad-ud-test\.conllu"):
        convert_file(path, "xx")
