"""``xalign info`` and ``xalign validate``: look at a store without loading its arrays."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from xalign.cli.render import render_summary

__all__ = ["info", "validate"]


@click.command()
@click.argument("store", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(store: str, as_json: bool) -> None:
    """Summarise STORE: dims, size on disk, steps, languages, labels, provenance.

    Reads metadata and label coordinates only, so it is quick on any store size.
    Steps whose weights are identical to another step's are flagged.

    \b
    Example:
      xalign info runs/bloom-560m.zarr
    """
    from xalign.store import open_store, summarize

    summary = summarize(open_store(store))
    click.echo(json.dumps(asdict(summary), indent=2) if as_json else render_summary(store, summary))


@click.command()
@click.argument("store", type=click.Path(file_okay=False))
def validate(store: str) -> None:
    """Check STORE against its schema; list every violation with its path.

    Exit code 0 if the store is valid, 1 if not.

    \b
    Example:
      xalign validate runs/bloom-560m.zarr
    """
    from xalign.store import find_violations

    violations = find_violations(store)
    for violation in violations:
        click.echo(str(violation))
    if violations:
        raise click.ClickException(f"{store}: {len(violations)} schema violation(s)")
    click.echo(f"{store}: valid")
