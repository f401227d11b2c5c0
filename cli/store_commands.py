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
@click.option(
    "--checksums",
    is_flag=True,
    help="Also read every chunk back and check it (CRC32C of the activations); list each damaged one.",
)
def validate(store: str, checksums: bool) -> None:
    """Check STORE against its schema; list every violation with its path.

    With --checksums, also read every chunk of every array and list each one that is
    damaged (a failed checksum, or bytes that cannot be decoded), with its array and chunk
    index. That reads the whole store: minutes for hundreds of gigabytes.

    Exit code 0 if the store is valid, 1 if not.

    \b
    Examples:
      xalign validate runs/bloom-560m.zarr
      xalign validate --checksums runs/bloom-560m.zarr
    """
    from xalign.store import find_violations

    violations = find_violations(store)
    for violation in violations:
        click.echo(str(violation))
    faults = []
    if checksums:
        from xalign.store.integrity import find_corrupt_chunks

        faults = find_corrupt_chunks(store)
        for fault in faults:
            click.echo(str(fault))
    if violations or faults:
        problems = [f"{len(violations)} schema violation(s)"]
        if checksums:
            problems.append(f"{len(faults)} corrupt chunk(s)")
        raise click.ClickException(f"{store}: {', '.join(problems)}")
    click.echo(f"{store}: valid" + (", every chunk reads back intact" if checksums else ""))
