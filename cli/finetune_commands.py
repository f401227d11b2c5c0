"""``xalign finetune``: zero-shot transfer by fine-tuning each checkpoint (independent of the overlap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xalign import dims
from xalign.analysis.finetune import FINETUNE_MEASURE, FinetuneParams
from xalign.cli.analysis_commands import EXCLUDE_FLAGGED, OVERWRITE, STORE, stored_fields, stored_line
from xalign.cli.options import dataclass_options, int_list_option
from xalign.cli.progress import persist_slabs
from xalign.cli.render import JSON_OPTION, Output, render_transfer

__all__ = ["finetune"]


@click.command()
@STORE
@dataclass_options(FinetuneParams)
@int_list_option("--step", "steps", help="Only this step. Default: all.")
@click.option("--target", "targets", multiple=True, help="Test on this language (repeatable). Default: all.")
@click.option(
    "--checkpoints",
    "manifest_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Load the models from this manifest directory (xalign toy-checkpoints) instead of where "
    "the store says they came from.",
)
@click.option("--name", help="Analysis group: analyses/finetune/NAME (default: upos).")
@click.option(
    "--scheduler",
    default="sync",
    show_default=True,
    help="sync (one checkpoint after another), processes, local:N or tcp://host:port; each task "
    "uses --threads torch threads.",
)
@EXCLUDE_FLAGGED
@OVERWRITE
@JSON_OPTION
def finetune(
    store: str,
    steps: tuple[int, ...],
    targets: tuple[str, ...],
    manifest_dir: Path | None,
    name: str | None,
    scheduler: str,
    exclude_flagged: bool,
    overwrite: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Zero-shot transfer as the paper measures it: fine-tune each checkpoint, test on every language.

    For each checkpoint in STORE, the model it was extracted from (the local directory or hub
    revision the store records) gets a token-classification head and is fine-tuned for UPOS
    tagging on the source language's train sentences; the epoch is chosen on its dev
    sentences, and accuracy is measured on each target's test sentences (the label of a word
    on its first subword). Sentences are split 80/10/10 by sentence id, the same way in every
    language, so no target is tested on translations of what the source trained on. It reads
    no stored hidden state: unlike `xalign transfer` (probe transfer), it is an independent
    measure to correlate with the overlap. One task per checkpoint; rerun to resume.

    \b
    Examples:
      xalign finetune runs/demo/toy.zarr --epochs 3
      xalign finetune runs/bloom.zarr --source en --lora --device cuda --compute-dtype bfloat16
    """
    import xalign
    from xalign.extract.checkpoints import from_directory

    params = FinetuneParams(**{**settings, "sources": settings["sources"] or None})
    checkpoints = {c.step: c for c in from_directory(manifest_dir)[1]} if manifest_dir else None
    opened = xalign.open_store(store)
    outcome = persist_slabs(
        lambda: xalign.finetune(
            opened,
            params,
            steps=steps or None,
            targets=targets or None,
            checkpoints=checkpoints,
            exclude_flagged=exclude_flagged,
        ),
        opened,
        name,
        overwrite=overwrite,
        scheduler=scheduler,
        desc="fine-tuning",
        unit="checkpoint",
    )
    out = Output(as_json)
    out.echo(FINETUNE_MEASURE)
    result = outcome.result.sortby(dims.STEP).compute()
    done = result[dims.STEP].values[result["status"].values == "done"]
    for step in done:
        at = result.sel({dims.STEP: step})
        seconds = float(at["cpu_seconds"].sum())
        out.echo(f"step {int(step)}: UPOS accuracy on each target's test sentences ({seconds:.0f} CPU s)")
        out.echo(render_transfer(at["accuracy"]))
        out.echo("  always the source's most frequent tag:")
        out.echo(render_transfer(at["baseline"]))
    out.echo(stored_line(outcome))
    out.add(measure=FINETUNE_MEASURE, finetune=result, **stored_fields(outcome))
    out.finish()
