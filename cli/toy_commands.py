"""``xalign toy-checkpoints``: a tiny BLOOM trained here, to try the pipeline without the hub."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import click

from xalign.cli.options import int_list_option, refuse_arguments, renamed_option
from xalign.cli.render import JSON_OPTION, Output, render_table

__all__ = ["toy_checkpoints"]


STEP_HELP = "Steps to save, 0 being the initialisation.  [default: 0,50,100,200,300,400]"


@click.command("toy-checkpoints", context_settings={"allow_extra_args": True})
@click.option("--out", type=click.Path(file_okay=False), help="Folder of the checkpoints (required).")
@int_list_option("--step", "steps", help=STEP_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the weights and batch order.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--blocks", type=click.IntRange(min=1), default=4, show_default=True, help="Blocks.")
@click.option("--vocab-size", type=click.IntRange(min=1), default=8000, show_default=True, help="BPE size.")
@click.option("--overwrite", is_flag=True, help="Replace the checkpoints --out holds instead of refusing.")
@renamed_option("--steps", "--step", why="repeatable, or a comma list: --step 0,50,100")
@renamed_option("--layers", "--blocks", why="--layer means a hidden-state index everywhere")
@JSON_OPTION
@click.pass_context
def toy_checkpoints(
    ctx: click.Context,
    /,
    out: str | None,
    steps: tuple[int, ...],
    seed: int,
    hidden_size: int,
    blocks: int,
    vocab_size: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Train a tiny multilingual BLOOM and save checkpoints in --out.

    The model (hidden 128, 4 blocks, 4 heads by default) learns from the text of the
    embedded PUD sample (450 of the 500 sentences in each of 8 languages) with a byte-level
    BPE tokenizer trained on the same text; the other 10% of each language is held out, and
    each checkpoint's loss is measured on it. Training is seeded and deterministic; the
    default run (400 steps) takes about 4 minutes on two CPU cores.

    Each checkpoint is <out>/step_<N>, loadable with transformers' from_pretrained, and
    <out>/manifest.json lists them with their held-out loss. Rerunning with the same
    options reuses a finished --out folder.

    \b
    Example:
      xalign toy-checkpoints --out runs/toy
      xalign toy-checkpoints --out runs/toy-small --step 0,20,40 --hidden-size 64 --blocks 2
    """
    from xalign.cli.progress import progress_bar
    from xalign.toy import ToyConfig, train_toy_checkpoints

    refuse_arguments(ctx, "the folder is given with --out (xalign toy-checkpoints --out runs/toy)")
    if out is None:
        raise click.UsageError("missing --out DIR: the folder of the checkpoints", ctx=ctx)
    config = ToyConfig(seed=seed, hidden_size=hidden_size, n_layer=blocks, vocab_size=vocab_size)
    if steps:
        config = dataclasses.replace(config, steps=steps)
    bars: list[Any] = []

    def on_step(step: int, loss: float) -> None:
        # Opened at the first step, so that it times training only and a reused folder shows none.
        if not bars:
            bars.append(progress_bar(total=config.steps[-1], desc="training", unit="step"))
        bars[0].set_postfix_str(f"loss {loss:.3f}")
        bars[0].update(1)

    try:
        manifest = train_toy_checkpoints(out, config, on_step=on_step, overwrite=overwrite)
    finally:
        for bar in bars:
            bar.close()
    shown = Output(as_json)
    if not bars and config.steps[-1] > 0:
        shown.echo(f"{out} already holds these checkpoints; reused them (--overwrite to train again)")
    losses = dict(manifest.losses)
    rows = [(step, os.path.join(out, path), f"{losses[step]:.3f}") for step, path in manifest.checkpoints]
    shown.echo(
        f"{len(rows)} checkpoints of {manifest.model_id} ({manifest.n_parameters:,} parameters) in {out}"
    )
    shown.echo(render_table(("step", "checkpoint", "held-out loss"), rows))
    shown.add(folder=out, reused=not bars, **manifest.to_dict())
    shown.finish()
