"""``xalign report`` and ``xalign demo``: the findings of a store as plots and a page."""

from __future__ import annotations

from pathlib import Path

import click

from xalign.cli.options import int_list_option, refuse_arguments, renamed_option, store_argument
from xalign.cli.render import JSON_OPTION, Output
from xalign.data import PUD_LANGUAGES

__all__ = ["demo", "report"]

HEADLINE_LAYER = click.option(
    "--layer",
    type=int,
    help="The layer the headline and scatter plots report (a hidden-state index: 0 is the embeddings). "
    "Default: the middle stored layer, fixed before looking at any result.",
)


@click.command()
@store_argument()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PNG plots and index.html (created).",
)
@click.option("--overlap", "overlap_name", help="analyses/overlap/NAME to show (default: the first stored).")
@click.option(
    "--similarity", "similarity_name", help="analyses/similarity/NAME to show (default: the first)."
)
@click.option(
    "--source",
    help="The language transfer starts from. Default: that of a stored correlation, else en where "
    "the store has it, else its first language.",
)
@click.option(
    "--exclude-flagged",
    is_flag=True,
    help="Leave flagged checkpoints out of the correlations (always marked).",
)
@HEADLINE_LAYER
@JSON_OPTION
def report(
    store: str,
    out: Path,
    overlap_name: str | None,
    similarity_name: str | None,
    source: str | None,
    exclude_flagged: bool,
    layer: int | None,
    as_json: bool,
) -> None:
    """Plot what STORE holds and write OUT/index.html, which opens in a browser with no server.

    Overlap vs step against chance, language x language overlap, overlap vs transfer with r
    and its confidence interval, parallel-sentence similarity and held-out loss per
    checkpoint; flagged checkpoints are marked everywhere.

    \b
    Example:
      xalign report runs/demo/toy.zarr --out runs/demo/report --exclude-flagged
    """
    from xalign.report import write_report
    from xalign.report.collect import collect_report

    data = collect_report(
        store,
        overlap_name=overlap_name,
        similarity_name=similarity_name,
        source=source,
        exclude_flagged=exclude_flagged,
        layer=layer,
    )
    paths = write_report(data, out)
    shown = Output(as_json)
    for note in data.notes:
        shown.echo(note)
    shown.echo(f"wrote {len(paths) - 1} plot(s) and {paths[-1]}")
    shown.add(notes=list(data.notes), page=paths[-1], plots=paths[:-1])
    shown.finish()


@click.command(context_settings={"allow_extra_args": True})
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Folder of the whole run: checkpoints, store, report.",
)
@int_list_option("--step", "steps", help="Checkpoints to train and keep.  [default: 0,100,200,400,600]")
@click.option(
    "--hidden-size",
    type=click.IntRange(min=8),
    default=128,
    show_default=True,
    help="Width of the toy BLOOM.",
)
@click.option("--blocks", type=click.IntRange(min=1), default=4, show_default=True, help="Blocks of the toy.")
@click.option(
    "--language",
    "languages",
    type=click.Choice(PUD_LANGUAGES),
    multiple=True,
    help="Embedded PUD language (repeatable; the source is en if chosen, else the first). Default: all 8.",
)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Neurons per top-k set.")
@HEADLINE_LAYER
@click.option(
    "--scheduler", default="threads", show_default=True, help="threads, processes, sync or local:N."
)
@renamed_option("--steps", "--step", why="repeatable, or a comma list: --step 0,50,100")
@renamed_option("--layers", "--blocks", why="--layer means a hidden-state index everywhere")
@JSON_OPTION
@click.pass_context
def demo(
    ctx: click.Context,
    /,
    out: Path,
    steps: tuple[int, ...],
    hidden_size: int,
    blocks: int,
    languages: tuple[str, ...],
    k: int,
    layer: int | None,
    scheduler: str,
    as_json: bool,
) -> None:
    """The whole study on the embedded data, into --out (default runs/demo).

    Trains a tiny BLOOM on the shipped PUD sentences (8 languages) keeping checkpoints,
    extracts their hidden states, probes which neurons encode each attribute, and measures
    overlap across languages against chance, zero-shot transfer, their correlation and
    parallel-sentence similarity; then writes <out>/report/index.html. A few minutes on two
    CPU cores; a second run reuses every finished stage.

    \b
    Examples:
      xalign demo
      xalign demo --out runs/small --step 0,50,100 --language en --language fr --language es
    """
    from typing import Any

    from xalign.cli.cluster import check_spec, compute_on
    from xalign.cli.progress import progress_bar
    from xalign.demo import DemoConfig, run_demo
    from xalign.parallel import LOCAL_SCHEDULERS

    refuse_arguments(ctx, "the folder is given with --out (xalign demo --out runs/demo)")
    chosen: dict[str, Any] = {"hidden_size": hidden_size, "n_layer": blocks, "k": k, "layer": layer}
    if steps:
        chosen["steps"] = steps
    if languages:
        chosen["languages"] = languages
        chosen["source"] = "en" if "en" in languages else languages[0]
        if chosen["source"] != "en":
            click.echo(
                f"source language: {languages[0]} (en is not among --language; the first is used)", err=True
            )

    check_spec(scheduler)
    try:
        config = DemoConfig(**chosen, scheduler=scheduler if scheduler in LOCAL_SCHEDULERS else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    shown = Output(as_json)
    with compute_on(scheduler) as where:
        outcome = run_demo(out, config, echo=shown.echo, progress=progress_bar, client=where.get("client"))
    shown.add(store=outcome.store, report=outcome.report, headline=outcome.headline)
    shown.finish()
