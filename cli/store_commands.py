"""``xalign info`` and ``xalign validate``: look at a store without loading its arrays."""

from __future__ import annotations

import click

from xalign.cli.options import store_argument
from xalign.cli.render import JSON_OPTION, Output, render_summary

__all__ = ["copy", "info", "validate"]


@click.command()
@store_argument(exists=False)
@JSON_OPTION
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
    out = Output(as_json)
    out.echo(render_summary(store, summary))
    out.add(**{field: getattr(summary, field) for field in summary.__dataclass_fields__})
    out.finish()


@click.command()
@store_argument(exists=False)
@click.option(
    "--checksums",
    is_flag=True,
    help="Also read every chunk back and check it (CRC32C of the activations); list each damaged one.",
)
@JSON_OPTION
def validate(store: str, checksums: bool, as_json: bool) -> None:
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

    out = Output(as_json)
    violations = find_violations(store)
    for violation in violations:
        out.echo(str(violation))
    faults = []
    if checksums:
        from xalign.store.integrity import find_corrupt_chunks

        faults = find_corrupt_chunks(store)
        for fault in faults:
            out.echo(str(fault))
    out.add(
        store=store,
        valid=not (violations or faults),
        violations=[str(v) for v in violations],
        corrupt_chunks=[str(f) for f in faults] if checksums else None,
    )
    out.finish()
    if violations or faults:
        problems = [f"{len(violations)} schema violation(s)"]
        if checksums:
            problems.append(f"{len(faults)} corrupt chunk(s)")
        raise click.ClickException(f"{store}: {', '.join(problems)}")
    out.echo(f"{store}: valid" + (", every chunk reads back intact" if checksums else ""))


@click.command()
@store_argument()
@click.argument("destination", metavar="DESTINATION")
@JSON_OPTION
def copy(store: str, destination: str, as_json: bool) -> None:
    """Copy STORE to DESTINATION (a path or URL: local to bucket and back), object by object.

    Every object is written unchanged (chunks keep their checksums) and read back to check its
    SHA-256; chunks go first and the metadata last, so a copy cut short does not open as a
    store. Run it again to resume: objects already there, the same, are skipped.

    \b
    Examples:
      xalign --storage-option endpoint_url=http://minio.lab:9000 copy runs/bloom.zarr s3://lab/bloom.zarr
      xalign copy s3://lab/bloom.zarr /scratch/bloom.zarr
    """
    from xalign.cli.progress import progress_bar
    from xalign.store.copy import copy_store

    bar = progress_bar(desc="copying", unit="object")
    try:
        report = copy_store(
            store,
            destination,
            on_plan=lambda total: setattr(bar, "total", total),
            on_object=lambda _: bar.update(1),
        )
    finally:
        bar.close()
    out = Output(as_json)
    out.echo(
        f"{destination}: {report.copied} of {report.objects} objects written "
        f"({report.bytes_copied / 2**20:.1f} MiB), {report.objects - report.copied} already there; "
        "every one read back and checked"
    )
    out.add(source=store, destination=destination, report=report)
    out.finish()
