"""``xalign compare``: several models' stores side by side, in one report."""

from __future__ import annotations

from pathlib import Path

import click

from xalign.cli.options import StoreParam
from xalign.cli.render import JSON_OPTION, Output

__all__ = ["compare"]


@click.command()
@click.argument("stores", nargs=-1, required=True, type=StoreParam(exists=True))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder of the report."
)
@click.option(
    "--label", "labels", multiple=True, help="A label per store, in order (default: their model ids)."
)
@click.option(
    "--overlap",
    "overlap_name",
    default="probe",
    show_default=True,
    help="analyses/overlap/NAME of each store.",
)
@JSON_OPTION
def compare(
    stores: tuple[str, ...], out: Path, labels: tuple[str, ...], overlap_name: str, as_json: bool
) -> None:
    """Compare models (e.g. BLOOM 560m, 1b1, 1b7), each with its own STORE, in one report.

    Each store needs probing results and an overlap (xalign probe, xalign overlap); a stored
    correlation (xalign correlate) adds its r. Each model is read at its own headline layer (the
    middle stored one): overlap vs step as a multiple of chance and as a fraction of the model's
    noise ceiling, the probe quality gate's counts, held-out loss, and the correlation of overlap
    with transfer with its interval. Writes OUT/index.html.

    \b
    Example:
      xalign compare runs/bloom-560m.zarr runs/bloom-1b1.zarr --out runs/compare
    """
    import xalign
    from xalign.report.comparison import write_comparison

    if labels and len(labels) != len(stores):
        raise click.UsageError(f"give one --label per store ({len(stores)}), or none")
    chosen = dict(zip(labels, stores, strict=True)) if labels else list(stores)
    comparison = xalign.compare(chosen, overlap=overlap_name)
    written = write_comparison(comparison, out)
    shown = Output(as_json)
    for model in comparison["model"].values:
        at = comparison.sel(model=model)
        shown.echo(
            f"{model}: {int(at['n_neurons'])} neurons, layer {int(at['layer'])}, "
            f"chance {float(at['chance']):.3f}; "
            f"Pearson r {float(at['r']):.2f} [{float(at['ci_low']):.2f}, {float(at['ci_high']):.2f}] "
            f"({at['correlation_transfer'].values or 'no stored correlation'})"
        )
    shown.echo(f"wrote {len(written) - 1} plot(s) and {written[-1]}")
    shown.add(comparison=comparison, page=written[-1], plots=written[:-1])
    shown.finish()
