"""``xalign overlap``, ``transfer``, ``correlate``, ``similarity`` and ``health``: analyses of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xalign import dims
from xalign.cli.options import filter_options
from xalign.cli.render import (
    render_correlation,
    render_health,
    render_overlap,
    render_scores,
    render_similarity,
    render_transfer,
)

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
    chance = float(outcome.result.attrs["parameters"]["chance"])
    click.echo(f"mean overlap over language pairs and attributes (chance k/d = {chance:.3f}):")
    click.echo(render_overlap(summarize(outcome.result).compute()))
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
    from xalign.cli.cluster import compute_on

    if scores is not None:
        outcome = import_transfer_scores(
            store, scores, name=name, model=model, exclude_flagged=exclude_flagged, overwrite=overwrite
        )
        click.echo(render_scores(outcome.result["score"]))
        click.echo(_stored(outcome))
        return
    params = TransferParams(
        attributes=attributes or None, min_count=min_count, min_values=min_values, shrinkage=shrinkage
    )
    bar = tqdm(unit="slab", desc="transfer", dynamic_ncols=True, disable=None)
    try:
        with compute_on(scheduler) as where:
            outcome = run_transfer(
                store,
                params=params,
                name=name or "linear",
                languages=languages or None,
                exclude_flagged=exclude_flagged,
                overwrite=overwrite,
                on_slab=lambda _: bar.update(1),
                on_plan=lambda total: setattr(bar, "total", total),
                **where,
            )
    finally:
        bar.close()
    last = outcome.result.sortby(dims.STEP).isel({dims.STEP: -1})
    click.echo(f"accuracy at step {int(last[dims.STEP])}, mean over layers and attributes:")
    click.echo(render_transfer(last["accuracy"].mean([dims.LAYER, dims.ATTRIBUTE]).compute()))
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
@click.option(
    "--source",
    help="The language transfer starts from. Default: en where the store has it, else its first language.",
)
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
    source: str | None,
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
    from xalign.analysis.jobs import TransferSource, describe_choice, run_correlation

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
    used = str(outcome.result.attrs["parameters"]["source"])
    click.echo(describe_choice(used, source is None))
    click.echo(render_correlation(outcome.result.compute()))
    click.echo(_stored(outcome))


@click.command()
@STORE
@click.option(
    "--reference",
    help="Language every other one is compared with. Default: en where the store has it, else its first.",
)
@click.option(
    "--name", default="parallel", show_default=True, help="Analysis group: analyses/similarity/NAME."
)
@EXCLUDE_FLAGGED
@OVERWRITE
def similarity(store: str, reference: str | None, name: str, exclude_flagged: bool, overwrite: bool) -> None:
    """Cosine similarity of parallel sentences (same sentence id) per step, layer and language.

    Mean-pooled and last-token sentence vectors, each against its baseline: the same mean
    over mismatched pairs. Needs parallel treebanks, such as the shipped PUD sample.

    \b
    Example:
      xalign similarity runs/demo/toy.zarr --reference en
    """
    from xalign.analysis.jobs import describe_choice, run_similarity

    outcome = run_similarity(
        store, reference=reference, name=name, exclude_flagged=exclude_flagged, overwrite=overwrite
    )
    used = str(outcome.result.attrs["parameters"]["reference"])
    click.echo(describe_choice(used, reference is None, what="reference", option="--reference"))
    click.echo(f"mean-pooled cosine with {used}, mean over layers (mismatched-pair baseline):")
    click.echo(render_similarity(outcome.result.mean(dims.LAYER).compute(), used))
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
    """Flag checkpoints whose weights duplicate another's or whose held-out loss is anomalous.

    Duplicates come from the weight fingerprints extraction records; a held-out loss is
    anomalous when it exceeds the worse of its step-order neighbours' by more than
    --loss-tolerance nats (the first checkpoint is not judged). Analyses take
    --exclude-flagged to leave flagged checkpoints out.

    \b
    Example:
      xalign health runs/bloom-560m.zarr
    """
    from xalign.analysis.health import checkpoint_health
    from xalign.store.store import open_store

    result = checkpoint_health(open_store(store), loss_tolerance=loss_tolerance)
    click.echo(render_health(result))
    click.echo(f"{int(result['flagged'].sum())} of {result.sizes[dims.STEP]} checkpoint(s) flagged")
