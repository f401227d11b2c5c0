"""``xalign overlap``, ``transfer``, ``correlate``, ``similarity`` and ``health``: analyses of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xalign.cli.options import filter_options
from xalign.cli.render import render_table

__all__ = ["correlate", "health", "overlap", "similarity", "transfer"]

STORE = click.argument("store", type=click.Path(exists=True, file_okay=False))
EXCLUDE_FLAGGED = click.option(
    "--exclude-flagged",
    is_flag=True,
    help="Leave out checkpoints flagged by xalign health (duplicate weights, anomalous loss).",
)
OVERWRITE = click.option(
    "--overwrite", is_flag=True, help="Replace a stored analysis made with other parameters."
)


def _stored(outcome: Any) -> str:
    verb = "wrote" if outcome.written else "reused (same parameters)"
    excluded = f"; excluded flagged steps {list(outcome.excluded)}" if outcome.excluded else ""
    return f"{verb} analyses/{outcome.kind}/{outcome.name}{excluded}"


def _fmt(value: float, digits: int = 3) -> str:
    return "nan" if value != value else f"{value:.{digits}f}"


@click.command()
@STORE
@click.option("--probe", default="probe", show_default=True, help="Probing results to use: results/PROBE.")
@click.option("--k", type=click.IntRange(min=1), help="Top-k set size (default: the selection size).")
@click.option("--name", help="Analysis group: analyses/overlap/NAME (default: PROBE).")
@EXCLUDE_FLAGGED
@OVERWRITE
def overlap(
    store: str, probe: str, k: int | None, name: str | None, exclude_flagged: bool, overwrite: bool
) -> None:
    """Overlap of the neurons chosen for each attribute across languages, against chance.

    For every (step, layer, attribute) and language pair: overlap coefficient |A∩B|/k and
    Jaccard of the top-k sets, the exact hypergeometric p-value of that many shared neurons
    between random sets, Holm-corrected over the pairs. Prints the mean per step and layer.

    \b
    Example:
      xalign overlap runs/toy.zarr --k 10
    """
    from xalign.analysis.jobs import run_overlap
    from xalign.analysis.overlap import summarize

    outcome = run_overlap(
        store, probe=probe, k=k, name=name, exclude_flagged=exclude_flagged, overwrite=overwrite
    )
    summary = summarize(outcome.result).sortby("step").compute()
    chance = float(outcome.result.attrs["parameters"]["chance"])
    rows = [
        (
            int(step),
            int(layer),
            _fmt(float(summary["mean_overlap"].sel(step=step, layer=layer))),
            _fmt(float(summary["multiple_of_chance"].sel(step=step, layer=layer)), 2),
            f"{100 * float(summary['significant'].sel(step=step, layer=layer)):.0f}%",
        )
        for step in summary["step"].values
        for layer in summary["layer"].values
    ]
    click.echo(f"mean overlap over language pairs and attributes (chance k/d = {chance:.3f}):")
    click.echo(render_table(("step", "layer", "overlap", "x chance", "significant"), rows))
    click.echo(_stored(outcome))


@click.command()
@STORE
@click.option(
    "--scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import transfer scores from a CSV or JSON file (columns: step or revision, language, task, "
    "score, optional model) instead of measuring transfer from the store.",
)
@click.option("--model", help="With --scores: keep only the rows of this model.")
@click.option(
    "--attribute", "attributes", multiple=True, help="Attribute to transfer (repeatable; upos for POS)."
)
@click.option("--language", "languages", multiple=True, help="Only this language (repeatable).")
@filter_options
@click.option(
    "--shrinkage", type=click.FloatRange(0, 1), default=0.1, show_default=True, help="LDA shrinkage."
)
@click.option("--name", help="Analysis group name (default: linear, or the scores file's stem).")
@click.option(
    "--scheduler", default="threads", show_default=True, help="threads, processes, sync, local:N or tcp://."
)
@EXCLUDE_FLAGGED
@OVERWRITE
def transfer(
    store: str,
    scores: Path | None,
    model: str | None,
    attributes: tuple[str, ...],
    languages: tuple[str, ...],
    min_count: int,
    min_values: int,
    shrinkage: float,
    name: str | None,
    scheduler: str,
    exclude_flagged: bool,
    overwrite: bool,
) -> None:
    """Zero-shot cross-lingual transfer: measured from STORE, or imported with --scores.

    Measured: for each (step, layer) and attribute, a linear classifier (shrinkage LDA) is
    trained on one language's train words and tested on every language's test words, giving
    accuracy per (source, target); the diagonal is in-language accuracy. Imported: external
    scores (e.g. XNLI accuracy per checkpoint and language), checked row by row.

    \b
    Examples:
      xalign transfer runs/toy.zarr
      xalign transfer runs/bloom.zarr --scores xnli.csv --model bloom-560m
    """
    from tqdm import tqdm

    from xalign.analysis.jobs import import_transfer_scores, run_transfer
    from xalign.analysis.transfer import TransferParams

    if scores is not None:
        outcome = import_transfer_scores(
            store, scores, name=name, model=model, exclude_flagged=exclude_flagged, overwrite=overwrite
        )
        score = outcome.result["score"]
        counts = [
            (str(task), int(score.sel(task=task).notnull().sum()), _fmt(float(score.sel(task=task).mean())))
            for task in score["task"].values
        ]
        click.echo(render_table(("task", "scores", "mean"), counts))
        click.echo(_stored(outcome))
        return
    params = TransferParams(
        attributes=attributes or None, min_count=min_count, min_values=min_values, shrinkage=shrinkage
    )
    bar = tqdm(unit="slab", desc="transfer", dynamic_ncols=True, disable=None)
    try:
        outcome = run_transfer(
            store,
            params=params,
            name=name or "linear",
            languages=languages or None,
            scheduler=scheduler,
            exclude_flagged=exclude_flagged,
            overwrite=overwrite,
            on_slab=lambda _: bar.update(1),
            on_plan=lambda total: setattr(bar, "total", total),
        )
    finally:
        bar.close()
    result = outcome.result
    last = result.sortby("step").isel(step=-1)
    accuracy = last["accuracy"].mean(["layer", "attribute"]).compute()
    header = ("source \\ target", *[str(v) for v in accuracy["language_other"].values])
    rows: list[tuple[str, ...]] = [
        (str(src), *[_fmt(float(v), 2) for v in accuracy.sel(language=src).values])
        for src in accuracy["language"].values
    ]
    click.echo(f"accuracy at step {int(last['step'])}, mean over layers and attributes:")
    click.echo(render_table(header, rows))
    click.echo(_stored(outcome))


@click.command()
@STORE
@click.option(
    "--overlap", "overlap_name", default="probe", show_default=True, help="analyses/overlap/NAME to use."
)
@click.option(
    "--transfer",
    "transfer_name",
    default="linear",
    show_default=True,
    help="Transfer to correlate with: a built-in analysis NAME, or NAME:TASK of imported scores.",
)
@click.option("--source", default="en", show_default=True, help="The language transfer starts from.")
@click.option(
    "--n-boot", type=click.IntRange(min=100), default=2000, show_default=True, help="Bootstrap resamples."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--name", help="Analysis group: analyses/correlation/NAME (default: OVERLAP-TRANSFER).")
@EXCLUDE_FLAGGED
@OVERWRITE
def correlate(
    store: str,
    overlap_name: str,
    transfer_name: str,
    source: str,
    n_boot: int,
    seed: int,
    name: str | None,
    exclude_flagged: bool,
    overwrite: bool,
) -> None:
    """Correlate overlap with transfer over checkpoint x language cells, per layer.

    A cell is one step and one target language: overlap of SOURCE's neurons with the
    target's (mean over attributes) against transfer from SOURCE to the target. Pearson (as
    the reference) and Spearman, with p-values and bootstrap 95% intervals.

    \b
    Examples:
      xalign correlate runs/toy.zarr --exclude-flagged
      xalign correlate runs/bloom.zarr --transfer xnli:xnli --source en
    """
    from xalign.analysis.jobs import TransferSource, run_correlation

    transfer_name, _, task = transfer_name.partition(":")
    outcome = run_correlation(
        store,
        overlap_name=overlap_name,
        transfer=TransferSource(name=transfer_name, task=task or None),
        source=source,
        name=name,
        exclude_flagged=exclude_flagged,
        n_boot=n_boot,
        seed=seed,
        overwrite=overwrite,
    )
    result = outcome.result.compute()
    rows = []
    for layer in result["layer"].values:
        cells = result.sel(layer=layer)
        row: list[object] = [int(layer), int(cells["n_cells"])]
        for statistic in result["statistic"].values:
            stat = cells.sel(statistic=str(statistic))
            low, high = _fmt(float(stat["ci_low"]), 2), _fmt(float(stat["ci_high"]), 2)
            row.append(f"{_fmt(float(stat['r']), 2)} [{low}, {high}] p={float(stat['p_value']):.2g}")
        rows.append(row)
    click.echo(
        render_table(("layer", "cells", *[f"{m} r [95% CI]" for m in result["statistic"].values]), rows)
    )
    click.echo(_stored(outcome))


@click.command()
@STORE
@click.option(
    "--reference", default="en", show_default=True, help="Language every other one is compared with."
)
@click.option(
    "--name", default="parallel", show_default=True, help="Analysis group: analyses/similarity/NAME."
)
@EXCLUDE_FLAGGED
@OVERWRITE
def similarity(store: str, reference: str, name: str, exclude_flagged: bool, overwrite: bool) -> None:
    """Cosine similarity of parallel sentences (same sentence id) per step, layer and language.

    Mean-pooled and last-token sentence vectors, each against its baseline: the same mean
    over mismatched pairs. Needs parallel treebanks, such as the shipped PUD sample.
    """
    from xalign.analysis.jobs import run_similarity

    outcome = run_similarity(
        store, reference=reference, name=name, exclude_flagged=exclude_flagged, overwrite=overwrite
    )
    result = outcome.result.sortby("step").mean("layer").compute()
    languages = [str(v) for v in result["language"].values if str(v) != reference]
    rows = [
        (
            int(step),
            *[
                f"{_fmt(float(result['mean_cosine'].sel(step=step, language=lang)), 2)}"
                f" ({_fmt(float(result['mean_baseline'].sel(step=step, language=lang)), 2)})"
                for lang in languages
            ],
        )
        for step in result["step"].values
    ]
    click.echo(f"mean-pooled cosine with {reference}, mean over layers (mismatched-pair baseline):")
    click.echo(render_table(("step", *languages), rows))
    click.echo(_stored(outcome))


@click.command()
@STORE
@click.option(
    "--loss-tolerance",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Nats above the worse neighbour's held-out loss that make a checkpoint anomalous.",
)
def health(store: str, loss_tolerance: float) -> None:
    """Flag checkpoints whose weights duplicate another's or whose held-out loss is anomalous."""
    from xalign.analysis.health import checkpoint_health
    from xalign.store.store import open_store

    result = checkpoint_health(open_store(store), loss_tolerance=loss_tolerance).sortby("step")
    mean_loss = result["heldout_loss"].mean("language")
    rows = [
        (
            int(step),
            _fmt(float(mean_loss.sel(step=step)), 2),
            _fmt(float(result["loss_excess"].sel(step=step)), 2),
            str(result["reason"].sel(step=step).item()) or "ok",
        )
        for step in result["step"].values
    ]
    click.echo(render_table(("step", "held-out loss", "above neighbours", "verdict"), rows))
    flagged = int(result["flagged"].sum())
    click.echo(f"{flagged} of {result.sizes['step']} checkpoint(s) flagged")
