"""``xalign overlap``, ``transfer``, ``correlate``, ``similarity`` and ``health``: analyses of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xalign import dims
from xalign.analysis.correlation import CLUSTER_INTERVAL
from xalign.analysis.gate import describe_gate_parameters
from xalign.analysis.sources import describe_choice
from xalign.analysis.transfer import TransferParams
from xalign.cli.options import dataclass_options, preset_option, store_argument
from xalign.cli.progress import persist_slabs
from xalign.cli.render import (
    JSON_OPTION,
    Output,
    render_correlation,
    render_health,
    render_overlap,
    render_scores,
    render_similarity,
    render_transfer,
)

__all__ = ["correlate", "health", "overlap", "similarity", "stored_fields", "stored_line", "transfer"]

STORE = store_argument()
EXCLUDE_FLAGGED = click.option(
    "--exclude-flagged",
    is_flag=True,
    help="Leave out checkpoints flagged by xalign health (duplicate weights, anomalous loss).",
)
OVERWRITE = click.option(
    "--overwrite", is_flag=True, help="Replace a stored analysis made with other parameters."
)


def stored_fields(outcome: Any) -> dict[str, Any]:
    """Where a persisted analysis is, for ``--json``."""
    return {
        "group": f"analyses/{outcome.kind}/{outcome.name}",
        "written": bool(outcome.written),
        "excluded_steps": list(outcome.excluded),
    }


def stored_line(outcome: Any) -> str:
    verb = "wrote" if outcome.written else "reused (same parameters)"
    excluded = f"; excluded flagged steps {list(outcome.excluded)}" if outcome.excluded else ""
    return f"{verb} analyses/{outcome.kind}/{outcome.name}{excluded}"


@click.command()
@STORE
@preset_option("overlap")
@click.option("--probe", default="probe", show_default=True, help="Probing results to use: results/PROBE.")
@click.option("--k", type=click.IntRange(min=1), help="Top-k set size (default: the selection size).")
@click.option(
    "--gate/--no-gate",
    default=True,
    show_default=True,
    help="Use only the cells whose probe beats its permutation null (see xalign probe --n-permutations).",
)
@click.option(
    "--gate-alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@click.option(
    "--gate-method",
    type=click.Choice(["bh", "holm"]),
    default="bh",
    show_default=True,
    help="Correction over every probed cell: Benjamini-Hochberg (false discovery rate) or Holm.",
)
@click.option("--name", help="Analysis group: analyses/overlap/NAME (default: PROBE).")
@EXCLUDE_FLAGGED
@OVERWRITE
@JSON_OPTION
def overlap(
    store: str,
    probe: str,
    k: int | None,
    gate: bool,
    gate_alpha: float,
    gate_method: str,
    name: str | None,
    exclude_flagged: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Overlap of the neurons chosen for each attribute across languages, against chance.

    For every (step, layer, attribute) and language pair: overlap coefficient |A∩B|/k and
    Jaccard of the top-k sets, the exact hypergeometric p-value of that many shared neurons
    between random sets, Holm-corrected over the pairs. By default a cell takes part only if
    its probe beats its permutation null (the probe quality gate). Prints the mean per step
    and layer.

    \b
    Example:
      xalign overlap runs/toy.zarr --k 10
    """
    import xalign
    from xalign.analysis.overlap import summarize

    opened = xalign.open_store(store)
    lazy = xalign.overlap(
        opened,
        probe=probe,
        k=k,
        exclude_flagged=exclude_flagged,
        gated=gate,
        gate_alpha=gate_alpha,
        gate_method=gate_method,
    )
    outcome = xalign.persist(lazy, opened, name, overwrite=overwrite)
    out = Output(as_json)
    out.echo(describe_gate_parameters(outcome.result.attrs["gate"]))
    chance = float(outcome.result.attrs["parameters"]["chance"])
    summary = summarize(outcome.result).compute()
    out.echo(f"mean overlap over language pairs and attributes (chance k/d = {chance:.3f}):")
    out.echo(render_overlap(summary))
    out.echo(stored_line(outcome))
    out.add(chance=chance, summary=summary, **stored_fields(outcome))
    out.finish()


@click.command()
@STORE
@click.option(
    "--scores",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Import transfer scores instead of measuring them (repeatable): CSV or JSON rows (step or "
    "revision, language, task, score[, model]), a wide CSV (a column per language), or "
    "lm-evaluation-harness results JSON (one file per revision).",
)
@click.option("--model", help="With --scores: keep only the rows of this model.")
@click.option("--language", "languages", multiple=True, help="Only this language (repeatable).")
@dataclass_options(TransferParams)
@click.option("--name", help="Analysis group name (default: linear, or the scores file's stem).")
@click.option(
    "--scheduler", default="threads", show_default=True, help="threads, processes, sync, local:N or tcp://."
)
@EXCLUDE_FLAGGED
@OVERWRITE
@JSON_OPTION
def transfer(
    store: str,
    scores: tuple[Path, ...],
    model: str | None,
    languages: tuple[str, ...],
    name: str | None,
    scheduler: str,
    exclude_flagged: bool,
    overwrite: bool,
    as_json: bool,
    **settings: Any,
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
      xalign transfer runs/bloom.zarr --scores lm-eval/*.json --name xnli   # harness results
      xalign transfer runs/bloom.zarr --scores udpos.csv   # wide: step,en,fr,... (task: udpos)
    """

    import xalign
    from xalign.analysis.transfer import PROBE_TRANSFER

    opened = xalign.open_store(store)
    out = Output(as_json)
    if scores:
        imported = xalign.import_transfer_scores(
            opened, list(scores), model=model, exclude_flagged=exclude_flagged
        )
        outcome = xalign.persist(imported, opened, name, overwrite=overwrite)
        if "skipped" in imported.attrs:
            out.echo(f"left out (language not in the store, or none): {imported.attrs['skipped']}")
        out.echo(render_scores(outcome.result["score"]))
        out.echo(stored_line(outcome))
        out.add(score=outcome.result["score"], **stored_fields(outcome))
        out.finish()
        return
    params = TransferParams(**{**settings, "attributes": settings["attributes"] or None})
    outcome = persist_slabs(
        lambda: xalign.transfer(opened, params, languages=languages or None, exclude_flagged=exclude_flagged),
        opened,
        name,
        overwrite=overwrite,
        scheduler=scheduler,
        desc="transfer",
        unit="slab",
    )
    click.echo(
        f"note: {PROBE_TRANSFER}: a linear classifier on one language's hidden states, tested on another's; "
        "for the paper's transfer, run xalign finetune",
        err=True,
    )
    last = outcome.result.sortby(dims.STEP).isel({dims.STEP: -1})
    accuracy = last["accuracy"].mean([dims.LAYER, dims.ATTRIBUTE]).compute()
    out.echo(f"accuracy at step {int(last[dims.STEP])}, mean over layers and attributes:")
    out.echo(render_transfer(accuracy))
    out.echo(stored_line(outcome))
    out.add(accuracy=outcome.result["accuracy"].compute(), **stored_fields(outcome))
    out.finish()


@click.command()
@STORE
@click.option(
    "--overlap", "overlap_name", default="probe", show_default=True, help="analyses/overlap/NAME to use."
)
@click.option(
    "--transfer",
    "transfer_name",
    help="Transfer to correlate with: finetune/NAME, NAME:TASK of imported scores, or transfer/NAME "
    "for probe transfer (not independent of the overlap; a warning says so). Default: the first "
    "fine-tuned transfer, else the first imported scores.",
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
@JSON_OPTION
def correlate(
    store: str,
    overlap_name: str,
    transfer_name: str | None,
    source: str | None,
    n_boot: int,
    seed: int,
    name: str | None,
    exclude_flagged: bool,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Correlate overlap with transfer over checkpoint x language cells, per layer.

    A cell is one step and one target language: overlap of SOURCE's neurons with the
    target's (mean over attributes) against transfer from SOURCE to the target. Pearson (as
    the reference) and Spearman, with p-values and bootstrap 95% intervals.

    \b
    Examples:
      xalign correlate runs/toy.zarr --exclude-flagged
      xalign correlate runs/bloom.zarr --transfer xnli:xnli --source en
      xalign correlate runs/toy.zarr --transfer transfer/linear   # probe transfer, with a warning
    """
    import xalign

    opened = xalign.open_store(store)
    lazy = xalign.correlate(
        opened,
        overlap=overlap_name,
        transfer=transfer_name,
        source=source,
        exclude_flagged=exclude_flagged,
        n_boot=n_boot,
        seed=seed,
    )
    outcome = xalign.persist(lazy, opened, name, overwrite=overwrite)
    used = str(outcome.result.attrs["parameters"]["source"])
    out = Output(as_json)
    out.echo(describe_choice(used, source is None))
    measure = outcome.result.attrs.get("measure", outcome.result.attrs["parameters"]["transfer"])
    out.echo(f"transfer: {measure}")
    if "warning" in outcome.result.attrs:
        click.echo(f"warning: {outcome.result.attrs['warning']}", err=True)
    result = outcome.result.compute()
    out.echo(render_correlation(result))
    out.echo(f"intervals and p-values: {CLUSTER_INTERVAL}")
    out.echo(stored_line(outcome))
    out.add(correlation=result, **stored_fields(outcome))
    out.finish()


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
@JSON_OPTION
def similarity(
    store: str, reference: str | None, name: str, exclude_flagged: bool, overwrite: bool, as_json: bool
) -> None:
    """Cosine similarity of parallel sentences (same sentence id) per step, layer and language.

    Mean-pooled and last-token sentence vectors, each against its baseline: the same mean
    over mismatched pairs. Needs parallel treebanks, such as the shipped PUD sample.

    \b
    Example:
      xalign similarity runs/demo/toy.zarr --reference en
    """
    import xalign

    opened = xalign.open_store(store)
    lazy = xalign.similarity(opened, reference=reference, exclude_flagged=exclude_flagged)
    outcome = xalign.persist(lazy, opened, name, overwrite=overwrite)
    used = str(outcome.result.attrs["parameters"]["reference"])
    out = Output(as_json)
    out.echo(describe_choice(used, reference is None, what="reference", option="--reference"))
    out.echo(f"mean-pooled cosine with {used}, mean over layers (mismatched-pair baseline):")
    out.echo(render_similarity(outcome.result.mean(dims.LAYER).compute(), used))
    out.echo(stored_line(outcome))
    out.add(similarity=outcome.result.compute(), **stored_fields(outcome))
    out.finish()


@click.command()
@STORE
@click.option(
    "--loss-tolerance",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Nats above the worse neighbour's held-out loss that make a checkpoint anomalous.",
)
@JSON_OPTION
def health(store: str, loss_tolerance: float, as_json: bool) -> None:
    """Flag checkpoints whose weights duplicate another's or whose held-out loss is anomalous.

    Duplicates come from the weight fingerprints extraction records; a held-out loss is
    anomalous when it exceeds the worse of its step-order neighbours' by more than
    --loss-tolerance nats (the first checkpoint is not judged). Analyses take
    --exclude-flagged to leave flagged checkpoints out.

    \b
    Example:
      xalign health runs/bloom-560m.zarr
    """
    import xalign

    result = xalign.health(store, loss_tolerance=loss_tolerance).compute()
    out = Output(as_json)
    out.echo(render_health(result))
    out.echo(f"{int(result['flagged'].sum())} of {result.sizes[dims.STEP]} checkpoint(s) flagged")
    out.add(health=result)
    out.finish()
