"""The ``xalign`` click group; each command lives in a module of its own and stays thin."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from xalign import __version__
from xalign.cli.analysis_commands import correlate, health, overlap, similarity, transfer
from xalign.cli.compare_commands import compare
from xalign.cli.extract_commands import extract
from xalign.cli.finetune_commands import finetune
from xalign.cli.options import storage_option
from xalign.cli.probe_commands import probe
from xalign.cli.report_commands import demo, report
from xalign.cli.store_commands import copy, info, validate
from xalign.cli.toy_commands import toy_checkpoints
from xalign.cli.treebank_commands import treebank_stats
from xalign.errors import XalignError

__all__ = ["cli", "main"]


_EXTRAS = {
    "torch": "torch",
    "transformers": "torch",
    "tokenizers": "torch",
    "peft": "lora",
    "h5py": "bench",
    "bokeh": "dashboard",
    "s3fs": "s3",
}
"""Optional dependency -> the extra that installs it."""


class _Group(click.Group):
    """Turns user-fixable errors into a one-line message and exit code 1, not a traceback: xalign's
    own errors, and a missing optional dependency (naming the extra that installs it). Lists its
    commands in pipeline order, by section (:data:`SECTIONS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, commands in SECTIONS:
            rows = [(command.name or "", command.short_help or "") for command, _ in commands]
            with formatter.section(title):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except XalignError as exc:
            raise click.ClickException(str(exc)) from exc
        except ModuleNotFoundError as exc:
            package = (exc.name or "").split(".")[0]
            if package not in _EXTRAS:
                raise
            extra = _EXTRAS[package]
            hint = (
                "" if extra != "torch" else " (pip install torch==2.13.0 first for its CPU build; see README)"
            )
            raise click.ClickException(
                f"this command needs {package}, which is not installed: pip install 'xalign[{extra}]'{hint}"
            ) from exc


_HANDLER_MARK = "_xalign_cli"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (a test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging(level: int) -> None:
    """Log records of ``xalign.*`` at ``level`` and above to stderr, one line each."""
    logger = logging.getLogger("xalign")
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(level)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _log_level(verbose: int, quiet: bool, log_level: str | None) -> int:
    if log_level is not None:
        return _LEVELS[log_level]
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xalign")
@click.option("-v", "--verbose", count=True, help="More log output on stderr: -v info, -vv debug.")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only.")
@click.option(
    "--log-level", type=click.Choice(list(_LEVELS)), help="Log this level and above (overrides -v and -q)."
)
@storage_option
def cli(verbose: int, quiet: bool, log_level: str | None) -> None:
    """Study how cross-lingual alignment emerges while a multilingual LM trains.

    Build an activation store of every checkpoint over UD treebanks, query it with
    xarray, probe which neurons encode which morphosyntactic attribute per language,
    measure how those neurons overlap across languages against chance, and relate that to
    cross-lingual transfer. Start with `xalign demo`.
    """
    _configure_logging(_log_level(verbose, quiet, log_level))


SECTIONS: tuple[tuple[str, tuple[tuple[click.Command, str], ...]], ...] = (
    ("Try it", ((demo, "The whole study on the embedded data, in minutes."),)),
    (
        "Build a store",
        (
            (toy_checkpoints, "Train a tiny BLOOM and save its checkpoints."),
            (treebank_stats, "Words per attribute value in CoNLL-U files."),
            (extract, "Hidden states of every checkpoint into a store."),
            (info, "Summarise a store."),
            (validate, "Check a store against its schema."),
            (copy, "Copy a store between a disk and a bucket."),
        ),
    ),
    (
        "Analyse it",
        (
            (probe, "Which neurons encode each attribute, per cell."),
            (overlap, "Overlap of those neurons across languages."),
            (finetune, "Zero-shot transfer by fine-tuning each checkpoint."),
            (transfer, "Transfer scores: imported, or from the store."),
            (correlate, "Correlate overlap with transfer."),
            (similarity, "Cosine similarity of parallel sentences."),
            (health, "Flag duplicated or broken checkpoints."),
        ),
    ),
    (
        "Show it",
        (
            (report, "Plots and a page of what a store holds."),
            (compare, "Compare the findings of several stores."),
        ),
    ),
)
"""The commands in pipeline order, each with the one line ``xalign --help`` shows."""

for _, commands in SECTIONS:
    for command, short in commands:
        command.short_help = short
        cli.add_command(command)


def main() -> None:
    """Entry point of the ``xalign`` console script."""
    cli()
