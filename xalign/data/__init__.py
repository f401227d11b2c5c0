"""The treebank sample shipped with xalign (PUD, CC BY-SA 3.0; see README.md here)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["PUD_LANGUAGES", "pud_files"]

PUD_LANGUAGES = ("en", "fr", "es", "pt", "zh", "id", "ar", "hi")
"""Languages of the embedded PUD sample, in the order the demo uses."""


def pud_files(languages: tuple[str, ...] | list[str] = PUD_LANGUAGES) -> list[Path]:
    """Paths of the embedded PUD CoNLL-U files for ``languages``.

    Raises
    ------
    ValueError
        If a language has no embedded file.
    """
    root = Path(str(files(__name__) / "pud"))
    by_language = {p.name.split("_", 1)[0]: p for p in sorted(root.glob("*/*.conllu"))}
    missing = [lang for lang in languages if lang not in by_language]
    if missing:
        raise ValueError(
            f"no embedded treebank for language(s) {', '.join(missing)}; "
            f"available: {', '.join(sorted(by_language))}"
        )
    return [by_language[lang] for lang in languages]
