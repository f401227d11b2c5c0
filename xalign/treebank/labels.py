"""Attribute labels of a word: UD FEATS as they are, or mapped to UniMorph tags.

The UD → UniMorph table is the one shipped in the `ud-compatibility` package
(McCarthy et al. 2018), which the reference pipeline used. It is GPL-licensed, so it is
read from the installed package and never copied into xalign.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from xalign.errors import XalignError
from xalign.treebank.reader import Word

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "POS_ATTRIBUTE",
    "LabelScheme",
    "UniMorphTable",
    "UniMorphTableError",
    "word_labels",
]

LabelScheme = Literal["ud", "unimorph", "unimorph-converter"]
"""``ud``: UD FEATS; ``unimorph``: UD attribute names with values looked up in the
UD-UniMorph table; ``unimorph-converter``: the reference's labels, from ud-compatibility's
converter grouped into UniMorph dimensions (:mod:`xalign.treebank.unimorph`), made per file by
:func:`xalign.treebank.corpus.load_corpora`, not word by word."""

DEFAULT_ATTRIBUTES: Final = (
    "Number",
    "Gender",
    "Case",
    "Tense",
    "Person",
    "Mood",
    "Aspect",
    "VerbForm",
    "Definite",
    "PronType",
    "Degree",
    "Voice",
    "Polarity",
)
"""The UD features commonly probed, in display order; documentation, not a filter."""

_PACKAGE: Final = "ud_compatibility"
_TABLE_NAME: Final = "UD-UniMorph.tsv"
_SCHEMES: Final = ("ud", "unimorph")
POS_ATTRIBUTE: Final = "POS"
"""The attribute that holds a word's part of speech when it is probed (``--pos``)."""


class UniMorphTableError(XalignError, ValueError):
    """The UD → UniMorph table is missing or malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UniMorphTable:
    """UD feature values mapped to UniMorph tags.

    Parameters
    ----------
    mapping
        ``(UD feature, UD value) -> UniMorph tag``; ``""`` where UniMorph has no
        counterpart.
    """

    mapping: Mapping[tuple[str, str], str]

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> UniMorphTable:
        """Read ``UD-UniMorph.tsv``; by default the copy inside `ud-compatibility`.

        Rows whose UD cell has no ``=`` (bare UPOS tags) are ignored; a missing
        UniMorph cell counts as empty.

        Raises
        ------
        UniMorphTableError
            If `ud-compatibility` is not installed (and no path is given), or a row maps
            one UD value to two different tags.
        """
        source = _default_path() if path is None else Path(path)
        mapping: dict[tuple[str, str], str] = {}
        with open(source, encoding="utf-8", newline="") as handle:
            for number, row in enumerate(handle, start=1):
                cells = [cell.strip() for cell in row.rstrip("\r\n").split("\t")]
                if number == 1 or "=" not in cells[0]:
                    continue
                feature, _, value = cells[0].partition("=")
                tag = cells[1] if len(cells) > 1 else ""
                if not feature or not value:
                    raise UniMorphTableError(f"{source}:{number}: bad UD cell {cells[0]!r}")
                if mapping.setdefault((feature, value), tag) != tag:
                    raise UniMorphTableError(
                        f"{source}:{number}: {cells[0]} mapped twice, to "
                        f"{mapping[feature, value]!r} and {tag!r}"
                    )
        return cls(mapping=mapping)

    def tag(self, feature: str, value: str) -> str | None:
        """UniMorph tag for one UD feature value, or None if it has none.

        Language-specific parts (``LGSPEC…``) are dropped, as the reference pipeline
        does; ``Case=Add`` (``IN+ALL;LGSPEC1``) becomes ``IN+ALL``.
        """
        tag = self.mapping.get((feature, value), "")
        parts = [part for part in tag.split(";") if part and not part.startswith("LGSPEC")]
        return ";".join(parts) or None


def word_labels(
    word: Word,
    *,
    scheme: LabelScheme = "ud",
    unimorph: UniMorphTable | None = None,
    features: Collection[str] | None = None,
) -> dict[str, str]:
    """Attribute → value labels of a word.

    Parameters
    ----------
    word
        The word.
    scheme
        ``"ud"``: the FEATS as written (layered names such as ``Number[psor]`` and
        multi-values such as ``2,3`` kept literally). ``"unimorph"``: the same UD
        attribute names, with values replaced by UniMorph tags (``Number=Plur`` gives
        ``Number: "PL"``); values without a tag are dropped, and so are multi-values
        and layered features, which the table does not list (the reference pipeline
        drops disjunctions too).
    unimorph
        The table for ``"unimorph"``; by default the one from `ud-compatibility`.
    features
        Keep only these attribute names.
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    wanted = (
        word.feats.items()
        if features is None
        else ((name, value) for name, value in word.feats.items() if name in features)
    )
    if scheme == "ud":
        return dict(wanted)
    table = unimorph if unimorph is not None else _default_table()
    labels: dict[str, str] = {}
    for name, value in wanted:
        tag = table.tag(name, value)
        if tag is not None:
            labels[name] = tag
    return labels


def _default_path() -> Path:
    # find_spec on a top-level name locates the package without running its code.
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _TABLE_NAME
        if candidate.is_file():
            return candidate
    raise UniMorphTableError(
        f"the UD → UniMorph table {_TABLE_NAME} comes from the 'ud-compatibility' package, "
        "which is not installed (pip install ud-compatibility) or lacks the file; "
        "or pass the path of a copy"
    )


@functools.cache
def _default_table() -> UniMorphTable:
    return UniMorphTable.load()
