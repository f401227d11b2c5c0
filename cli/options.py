"""Options shared by several commands, declared once so that they read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["corpus_options", "filter_options", "parse_treebanks"]

F = TypeVar("F", bound=Callable[..., Any])


def corpus_options(command: F) -> F:
    """--labels, --split and --seed: how words are labelled and split (CorpusOptions)."""
    for option in reversed(
        (
            click.option(
                "--labels",
                "label_scheme",
                type=click.Choice(["ud", "unimorph"]),
                default="ud",
                show_default=True,
                help="UD features, or UniMorph tags via the ud-compatibility table.",
            ),
            click.option(
                "--split",
                "split_mode",
                type=click.Choice(["lemma", "own"]),
                default="lemma",
                show_default=True,
                help="lemma: the reference's seeded lemma-disjoint 80/10/10 re-split; own: the files'.",
            ),
            click.option("--seed", type=int, default=0, show_default=True, help="Seed of the lemma split."),
        )
    ):
        command = option(command)
    return command


def filter_options(command: F) -> F:
    """--min-count and --min-values: the reference's filters on attribute values."""
    for option in reversed(
        (
            click.option(
                "--min-count",
                type=click.IntRange(min=1),
                default=20,
                show_default=True,
                help="Words a value needs in each of train, dev and test.",
            ),
            click.option(
                "--min-values",
                type=click.IntRange(min=2),
                default=2,
                show_default=True,
                help="Values an attribute needs after that filter.",
            ),
        )
    ):
        command = option(command)
    return command


def parse_treebanks(
    items: tuple[str, ...] | list[str], *, param_hint: str = "'--treebank'"
) -> tuple[list[str], dict[str, str]]:
    """``FILE`` or ``FILE:LANG`` items -> the files, and the languages given for some of them.

    A path that exists is a file even if it holds a colon; otherwise the text after the last
    colon is the language. A missing file or a bad code is a usage error naming the item.
    """
    from pathlib import Path

    from xalign.errors import TreebankError
    from xalign.treebank.corpus import check_language_code

    files: list[str] = []
    languages: dict[str, str] = {}
    for item in items:
        path, language = item, None
        if not Path(item).is_file() and ":" in item:
            path, _, language = item.rpartition(":")
        if not Path(path).is_file():
            raise click.BadParameter(f"file {path!r} does not exist", param_hint=param_hint)
        if language is not None:
            try:
                check_language_code(language, where=path)
            except TreebankError as exc:
                raise click.BadParameter(str(exc), param_hint=param_hint) from exc
            languages[str(Path(path))] = language
        files.append(path)
    return files, languages
