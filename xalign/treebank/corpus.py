"""A language's corpus: its treebanks' sentences with every word's labels and split.

This is what the reader, the labels and the splits make together, and what the extractor
and ``xalign treebank-stats`` consume. Files are grouped by the language of their UD file
name; the lemma split pools every file of a language, so that no lemma falls in two
splits of one language even when it has several treebanks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xalign.errors import TreebankError
from xalign.treebank.labels import (
    DEFAULT_ATTRIBUTES,
    POS_ATTRIBUTE,
    LabelScheme,
    UniMorphTable,
    word_labels,
)
from xalign.treebank.reader import Sentence, language_of, read_conllu, treebank_name
from xalign.treebank.splits import AttributeCounts, SplitMode, assign_splits, count_values
from xalign.treebank.surface import Units, surface_sentences
from xalign.treebank.unimorph import convert_file, group_features

__all__ = ["Corpus", "CorpusOptions", "check_language_code", "load_corpora", "load_corpus"]

_LANGUAGE_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class CorpusOptions:
    """How words are labelled and split; part of an extraction's configuration."""

    label_scheme: LabelScheme = "ud"
    features: tuple[str, ...] | None = None
    """Keep only these attributes; None keeps every feature the treebanks have."""
    pos: bool = False
    """Also probe the part of speech, as the attribute ``POS`` (the UPOS column, or UniMorph's
    Part of Speech dimension with ``unimorph-converter``), as the reference did."""
    units: Units = "words"
    """``words``: UD syntactic words; ``tokens``: surface tokens, a multiword token ("du")
    kept whole with its words' labels merged, as the reference did
    (:mod:`xalign.treebank.surface`)."""
    split_mode: SplitMode = "lemma"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    unimorph_table: str | None = None
    """Path of a UD-UniMorph table; None uses the one of the ud-compatibility package."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Corpus:
    """The sentences of one language, and the labels and split of each of its words."""

    language: str
    files: tuple[str, ...]
    sentences: tuple[Sentence, ...]
    labels: tuple[Mapping[str, str], ...]
    """Attribute -> value of every word, in corpus order."""
    splits: tuple[str, ...]
    """Split of every word, in corpus order."""

    @property
    def treebanks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(treebank_name(f) for f in self.files))

    @property
    def n_words(self) -> int:
        return len(self.splits)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attributes carried by at least one word: the common ones first, then the rest sorted."""
        present = {name for labels in self.labels for name in labels}
        common = [name for name in DEFAULT_ATTRIBUTES if name in present]
        return (*common, *sorted(present - set(common)))

    def counts(self) -> AttributeCounts:
        """Words per attribute value per split."""
        return count_values(zip(self.labels, self.splits, strict=True))


def check_language_code(code: str, *, where: str) -> str:
    """``code`` if it can name a language group (e.g. ``ta``, ``wo``, ``sme``), else a clear error."""
    if not _LANGUAGE_CODE.match(code):
        raise TreebankError(
            where, None, f"{code!r} is not a language code: expected letters, e.g. ta, ur or eu"
        )
    return code


def load_corpora(
    paths: Iterable[str | os.PathLike[str]],
    *,
    options: CorpusOptions | None = None,
    file_languages: Mapping[str, str] | None = None,
) -> dict[str, Corpus]:
    """Read CoNLL-U files into one :class:`Corpus` per language, in the order first seen.

    Parameters
    ----------
    file_languages
        Path -> language code, for files whose names are not UD-style
        (``<lang>_<treebank>-ud-<split>.conllu``); other files take the language of their name.

    Raises
    ------
    TreebankError
        For a malformed file or a file whose language is neither given nor in its name,
        with file and line.
    """
    options = options or CorpusOptions()
    table = _table(options)
    given = {str(Path(path)): code for path, code in (file_languages or {}).items()}
    by_language: dict[str, list[str]] = {}
    for path in paths:
        name = str(Path(path))
        language = given.get(name) or language_of(path)
        check_language_code(language, where=name)
        by_language.setdefault(language, []).append(name)
    return {language: _corpus(language, files, options, table) for language, files in by_language.items()}


def load_corpus(language: str, files: Sequence[str], *, options: CorpusOptions | None = None) -> Corpus:
    """Read the CoNLL-U ``files`` of one ``language`` into a :class:`Corpus`."""
    options = options or CorpusOptions()
    return _corpus(language, files, options, _table(options))


def _table(options: CorpusOptions) -> UniMorphTable | None:
    return UniMorphTable.load(options.unimorph_table) if options.label_scheme == "unimorph" else None


def _corpus(
    language: str, files: Sequence[str], options: CorpusOptions, table: UniMorphTable | None
) -> Corpus:
    sentences = tuple(sentence for path in files for sentence in read_conllu(path))
    labels = _labels(language, files, sentences, options, table)
    if options.units == "tokens":
        sentences, labels = surface_sentences(sentences, labels)
    elif options.units != "words":
        raise ValueError(f"units must be 'words' or 'tokens', got {options.units!r}")
    splits = assign_splits(sentences, mode=options.split_mode, fractions=options.fractions, seed=options.seed)
    return Corpus(
        language=language,
        files=tuple(files),
        sentences=sentences,
        labels=tuple(word for sentence in labels for word in sentence),
        splits=tuple(split for sentence_splits in splits for split in sentence_splits),
    )


def _labels(
    language: str,
    files: Sequence[str],
    sentences: Sequence[Sentence],
    options: CorpusOptions,
    table: UniMorphTable | None,
) -> tuple[tuple[dict[str, str], ...], ...]:
    """Labels of every word, one tuple per sentence, with POS and the features filter applied."""
    if options.label_scheme == "unimorph-converter":
        bundles = [bundle for path in files for bundle in convert_file(path, language)]
        labels = [[group_features(b) for b in sentence] for sentence in bundles]
        mismatch = next(
            (s for s, b in zip(sentences, bundles, strict=False) if len(s.words) != len(b)),
            None,
        )
        if len(bundles) != len(sentences) or mismatch is not None:
            where = mismatch.path if mismatch is not None else files[0]
            raise TreebankError(
                where,
                None if mismatch is None else mismatch.line,
                "the UniMorph converter's output does not line up with the words of the file",
            )
    else:
        labels = [
            [word_labels(word, scheme=options.label_scheme, unimorph=table) for word in sentence.words]
            for sentence in sentences
        ]
        if options.pos:
            for sentence, sentence_labels in zip(sentences, labels, strict=True):
                for word, word_labels_ in zip(sentence.words, sentence_labels, strict=True):
                    if word.upos not in ("", "_"):
                        word_labels_[POS_ATTRIBUTE] = word.upos
    return tuple(tuple(_kept(word, options) for word in sentence_labels) for sentence_labels in labels)


def _kept(labels: dict[str, str], options: CorpusOptions) -> dict[str, str]:
    return {
        name: value
        for name, value in labels.items()
        if (options.pos or name != POS_ATTRIBUTE) and (options.features is None or name in options.features)
    }
