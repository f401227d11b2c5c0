"""``xalign treebank-stats``: what a user checks before a long extraction."""

from __future__ import annotations

from typing import Any

import click

from xalign.cli.options import corpus_options, filter_options, parse_treebanks
from xalign.cli.render import JSON_OPTION, Output, render_table

__all__ = ["treebank_stats"]

COLUMNS = ("attribute", "value", "train", "dev", "test", "status")


@click.command("treebank-stats")
@click.argument("files", nargs=-1, metavar="[FILE[:LANG]]...")
@corpus_options
@click.option(
    "--unimorph-table",
    type=click.Path(exists=True, dir_okay=False),
    help="A UD-UniMorph.tsv to use instead of the ud-compatibility package's.",
)
@filter_options
@click.option("--attribute", "attributes", multiple=True, help="Only this attribute (repeatable).")
@click.option("--all", "show_all", is_flag=True, help="Also list the values and attributes dropped.")
@JSON_OPTION
def treebank_stats(
    files: tuple[str, ...],
    label_scheme: str,
    pos: bool,
    units: str,
    unimorph_table: str | None,
    split_mode: str,
    seed: int,
    min_count: int,
    min_values: int,
    attributes: tuple[str, ...],
    show_all: bool,
    as_json: bool,
) -> None:
    """Words per attribute value per split, after the reference's filters.

    FILES are CoNLL-U files; the language comes from a UD-style name
    (`fr_gsd-ud-train.conllu`) or is given after a colon (`wolof.conllu:wo`), and the files
    of one language are pooled. Without FILES, the embedded
    parallel sample (PUD, 500 sentences in each of 8 languages) is used.

    A value is kept if it has at least --min-count words in each split; an attribute if
    at least --min-values of its values are kept. Kept attributes are what probing uses.

    \b
    Examples:
      xalign treebank-stats
      xalign treebank-stats UD_French-GSD/*.conllu --split own --all
      xalign treebank-stats --labels unimorph --attribute Number --attribute Case
      xalign treebank-stats --labels unimorph-converter --pos --units tokens
      xalign treebank-stats my-tamil-sample.conllu:ta
    """
    from xalign.data import pud_files
    from xalign.treebank.corpus import CorpusOptions, load_corpora
    from xalign.treebank.splits import filter_attributes

    options = CorpusOptions(
        label_scheme=label_scheme,  # type: ignore[arg-type]
        features=attributes or None,
        split_mode=split_mode,  # type: ignore[arg-type]
        seed=seed,
        unimorph_table=unimorph_table,
        pos=pos,
        units=units,  # type: ignore[arg-type]
    )
    paths, file_languages = parse_treebanks(files, param_hint="FILES")
    corpora = load_corpora(paths or pud_files(), options=options, file_languages=file_languages)
    out = Output(as_json)
    languages: dict[str, Any] = {}
    for corpus in corpora.values():
        counts = corpus.counts()
        kept = filter_attributes(counts, min_count=min_count, min_values=min_values)
        per_split = {split: corpus.splits.count(split) for split in ("train", "dev", "test")}
        out.echo(
            f"{corpus.language}  {', '.join(corpus.treebanks)}: {len(corpus.sentences)} sentences, "
            f"{corpus.n_words} words (train {per_split['train']}, dev {per_split['dev']}, "
            f"test {per_split['test']})"
        )
        rows = []
        for attribute in corpus.attributes:
            if attribute not in kept and not show_all:
                continue
            for value, by_split in sorted(counts.counts.get(attribute, {}).items()):
                status = "kept" if value in kept.get(attribute, ()) else "dropped"
                if status == "kept" or show_all:
                    rows.append(
                        (attribute, value, by_split["train"], by_split["dev"], by_split["test"], status)
                    )
        if rows:
            out.echo(render_table(("attribute", "value", "train", "dev", "test", ""), rows))
        summary = "; ".join(f"{a} ({', '.join(v)})" for a, v in kept.items()) or "none"
        out.echo(f"  kept: {summary}")
        dropped = [a for a in corpus.attributes if a not in kept]
        if dropped and not show_all:
            out.echo(f"  dropped (--all to see why): {', '.join(dropped)}")
        out.echo()
        languages[corpus.language] = {
            "treebanks": list(corpus.treebanks),
            "sentences": len(corpus.sentences),
            "words": corpus.n_words,
            "words_per_split": per_split,
            "kept": {a: list(v) for a, v in kept.items()},
            "dropped": dropped,
            "counts": [dict(zip(COLUMNS, row, strict=True)) for row in rows],
        }
    out.add(languages=languages)
    out.finish()
