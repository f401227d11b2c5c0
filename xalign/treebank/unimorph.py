"""UniMorph labels as the reference made them: ud-compatibility's converter, then dimensions.

The reference pipeline (Torroba Hennigen et al. 2020, reused by Wang et al. 2024) converts
each CoNLL-U file with ud-compatibility's ``marry.py convert --ud FILE -l LANG`` (McCarthy
et al. 2018), which rewrites the FEATS column as a UniMorph bundle (``V;IND;PRS;3;SG``) with
language-specific rules, and then groups the bundle's features into UniMorph dimensions
(``Tense: PRS``, ``Number: SG`` ...; its appendix C). xalign does the same:

- The converter is ud-compatibility's own code, run as a separate process (the package is
  GPL; nothing of it is copied here). Two things stop the installed package from running as
  the reference ran it, and the runner below works around both without changing its rules:
  its ``paths`` module imports ``pkg_resources`` (gone from setuptools 81), for which the
  runner provides ``resource_filename`` when the real module is missing; and its table of
  language-specific translators stays empty when it is imported as a package (it looks the
  classes up on the top-level package instead of its own module), so the rules would
  silently not apply. The runner fills that table with the package's own ``<Name>Translator``
  classes, as happens when ``marry.py`` runs as a script, which is how the reference ran it.
- Languages without a converter (zh, id ...) get the converter's basic, rule-free conversion,
  as in the reference.
- Grouping into dimensions follows the reference's rules: disjunctions (``{SG/PL}``) are
  dropped; conjunctions (``IN+ALL``) become one value with their parts sorted
  (``ALL+IN``) when all parts share a dimension and are dropped otherwise (the reference
  raises); ``PST+PRF`` is a Tense; ``ARG...`` argument markers take the dimension of the rest;
  ``NDEF`` is Definiteness ``INDF``; ``PSS...`` is Possession; ``LGSPEC...`` and features the
  schema does not list are dropped.
- Dimension names are UniMorph's, shortened to one word where UniMorph uses several:
  ``Part of Speech`` is ``POS``, ``Gender and Noun Class`` is ``Gender``, ``Argument Marking``
  is ``ArgumentMarking``, ``Information Structure`` is ``InformationStructure`` and
  ``Switch-Reference`` is ``SwitchReference``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from xalign.errors import TreebankError

__all__ = ["UNIMORPH_DIMENSIONS", "convert_file", "group_features"]

# The UniMorph 3.0 schema (Sylak-Glassman 2016): dimension -> its features.
_SCHEMA: Final = """
Aktionsart: STAT DYN TEL ATEL PCT DUR ACH ACCMP SEMEL ACTY
Animacy: ANIM INAN HUM NHUM
ArgumentMarking: NO1S NO1P NO2S NO2P NO3S NO3P AC1S AC1P AC2S AC2P AC3S AC3P AB1S AB1P AB2S AB2P
  AB3S AB3P ER1S ER1P ER2S ER2P ER3S ER3P DA1S DA1P DA2S DA2P DA3S DA3P BE1S BE1P BE2S BE2P BE3S BE3P
Aspect: IPFV PFV PRF PROG PROSP ITER HAB
Case: NOM ACC ERG ABS NOMS DAT BEN PRP GEN REL PRT INS COM VOC COMPV EQTV PRIV PROPR AVR FRML
  TRANS BYWAY INTER AT POST IN CIRC ANTE APUD ON ONHR ONVR SUB REM PRX ESS ALL ABL APPRX TERM PROL VERS
Comparison: CMPR SPRL AB RL EQT
Definiteness: DEF INDF SPEC NSPEC
Deixis: PROX MED REMT REF1 REF2 NOREF PHOR VIS NVIS ABV EVEN BEL
Evidentiality: FH DRCT SEN VISU NVSEN AUD NFH QUOT RPHT HRSY INFER ASSUM
Finiteness: FIN NFIN
Gender: MASC FEM NEUT BANT01 BANT02 BANT03 BANT04 BANT05 BANT06 BANT07 BANT08 BANT09 BANT10 BANT11
  BANT12 BANT13 BANT14 BANT15 BANT16 BANT17 BANT18 BANT19 BANT20 BANT21 BANT22 BANT23
  NAKH1 NAKH2 NAKH3 NAKH4 NAKH5 NAKH6 NAKH7 NAKH8
InformationStructure: TOP FOC
Interrogativity: DECL INT
Mood: IND SBJV REAL IRR AUPRP AUNPRP IMP COND PURP INTEN POT LKLY ADM OBLIG DEB PERM DED SIM OPT
Number: SG PL GRPL DU TRI PAUC GPAUC INVN
POS: N PROPN ADJ PRO CLF ART DET V ADV AUX V.PTCP V.MSDR V.CVB ADP COMP CONJ NUM PART INTJ
Person: 0 1 2 3 4 INCL EXCL PROXI OBVI
Polarity: POS NEG
Politeness: INFM FORM ELEV HUMB POL MPOL AVOID LOW HIGH STELV STSUPR LIT FOREG COL
Possession: ALN NALN PSSD
SwitchReference: SS SSADV DS DSADV OR SIMMA SEQMA LOG
Tense: PRS PST FUT IMMED HOD 1DAY RCT RMT
Valency: IMPRS INTR TR DITR REFL RECP CAUS APPL
Voice: ACT MID PASS ANTIP DIR INV AGFOC PFOC LFOC BFOC ACFOC IFOC CFOC
"""


def _parse_schema(text: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.strip().splitlines():
        if not line.startswith(" "):
            current, _, line = line.partition(":")
            out[current] = []
        out[current] += line.split()
    return {name: tuple(values) for name, values in out.items()}


UNIMORPH_DIMENSIONS: Final[Mapping[str, tuple[str, ...]]] = _parse_schema(_SCHEMA)
"""UniMorph dimension -> its features (UniMorph 3.0), with xalign's one-word dimension names."""

_DIMENSION_OF: Final = {value: name for name, values in UNIMORPH_DIMENSIONS.items() for value in values}


def group_features(bundle: str) -> dict[str, str]:
    """A UniMorph bundle (``V;IND;PRS;3;SG``) as dimension -> value, by the reference's rules."""
    out: dict[str, str] = {}
    for feature in bundle.split(";"):
        feature = feature.strip()
        if not feature or feature == "_" or "/" in feature or "LGSPEC" in feature:
            continue
        feature = feature.strip("{}")
        if feature == "PST+PRF":
            out["Tense"] = feature
        elif feature == "NDEF":
            out["Definiteness"] = "INDF"
        elif "PSS" in feature:
            out["Possession"] = feature
        elif feature.startswith("ARG") and feature[3:] in _DIMENSION_OF:
            out[_DIMENSION_OF[feature[3:]]] = feature[3:]
        elif "+" in feature:
            parts = feature.split("+")
            owners = {_DIMENSION_OF.get(part) for part in parts}
            if len(owners) == 1 and None not in owners:
                out[owners.pop()] = "+".join(sorted(parts))  # type: ignore[index]
        elif feature in _DIMENSION_OF:
            out[_DIMENSION_OF[feature]] = feature
    return out


# Runs in a child process: argv = [converted file, language code]. Provides pkg_resources'
# resource_filename if setuptools no longer ships it, registers the package's own
# language-specific translators (see the module docstring), then runs `marry.py convert`.
_RUNNER: Final = """
import contextlib, importlib.resources, io, sys, types
try:
    import pkg_resources
except ImportError:
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
    sys.modules["pkg_resources"] = shim
from ud_compatibility import languages, marry, translator
for language in languages.languages:
    found = getattr(translator, language.name.replace("-", "_") + "Translator", None)
    if found is not None:
        translator.translators[language] = found
path, code = sys.argv[1], sys.argv[2]
sys.argv = ["marry.py", "convert", "--ud", path, "-l", code]
with contextlib.redirect_stdout(io.StringIO()):
    marry.main()
"""


def convert_file(path: str | os.PathLike[str], language: str) -> list[list[str]]:
    """The UniMorph bundle of every syntactic word of a CoNLL-U file, one list per sentence.

    Runs ud-compatibility's converter on a copy of the file in a temporary directory (it
    writes its output beside its input) and reads back the FEATS column of every line with
    an integer ID.

    Raises
    ------
    TreebankError
        If ud-compatibility is not installed or the conversion fails, naming the file.
    """
    source = Path(path)
    with tempfile.TemporaryDirectory(prefix="xalign-um-") as tmp:
        copy = Path(tmp) / "input-ud-all.conllu"
        shutil.copyfile(source, copy)
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(copy), language],
            capture_output=True,
            text=True,
            check=False,
        )
        output = copy.with_name("input-um-all.conllu")
        if done.returncode != 0 or not output.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TreebankError(
                source, None, f"ud-compatibility's UniMorph converter failed ({last}); is it installed?"
            )
        return _bundles(output.read_text(encoding="utf-8"))


def _bundles(text: str) -> list[list[str]]:
    sentences: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("#"):
            columns = line.split("\t")
            if columns[0].isdigit():
                current.append(columns[5] if len(columns) > 5 else "_")
    if current:
        sentences.append(current)
    return sentences
