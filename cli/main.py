"""The ``xalign`` click group; each command lives in a module of its own and stays thin."""

from __future__ import annotations

from typing import Any

import click

from xalign import __version__
from xalign.cli.analysis_commands import correlate, health, overlap, similarity, transfer
from xalign.cli.compare_commands import compare
from xalign.cli.extract_commands import extract
from xalign.cli.finetune_commands import finetune
from xalign.cli.probe_commands import probe
from xalign.cli.report_commands import demo, report
from xalign.cli.store_commands import info, validate
from xalign.cli.toy_commands import toy_checkpoints
from xalign.cli.treebank_commands import treebank_stats
from xalign.errors import XalignError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Turns user-fixable errors into a one-line message and exit code 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except XalignError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xalign")
def cli() -> None:
    """Study how cross-lingual alignment emerges while a multilingual LM trains.

    Build an activation store of every checkpoint over UD treebanks, query it with
    xarray, probe which neurons encode which morphosyntactic attribute per language,
    measure how those neurons overlap across languages against chance, and relate that to
    cross-lingual transfer. Start with `xalign demo`.
    """


for command in (
    demo,
    toy_checkpoints,
    extract,
    probe,
    overlap,
    transfer,
    finetune,
    correlate,
    similarity,
    health,
    report,
    compare,
    info,
    validate,
    treebank_stats,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``xalign`` console script."""
    cli()
