"""``xalign toy-checkpoints``: a tiny BLOOM trained here, to try the pipeline without the hub."""

from __future__ import annotations

import dataclasses
import os

import click

from xalign.cli.render import render_table

__all__ = ["toy_checkpoints"]


def _parse_steps(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        steps = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 0,50,100: {value!r}") from None
    if not steps:
        raise click.BadParameter("expected at least one step")
    return steps


@click.command("toy-checkpoints")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--steps",
    callback=_parse_steps,
    help="Comma-separated steps to save, 0 being the initialisation.  [default: 0,50,100,200,300,400]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the weights and batch order.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=4, show_default=True, help="Blocks.")
@click.option("--vocab-size", type=click.IntRange(min=1), default=8000, show_default=True, help="BPE size.")
@click.option("--overwrite", is_flag=True, help="Replace the checkpoints OUT holds instead of refusing.")
def toy_checkpoints(
    out: str,
    steps: tuple[int, ...] | None,
    seed: int,
    hidden_size: int,
    layers: int,
    vocab_size: int,
    overwrite: bool,
) -> None:
    """Train a tiny multilingual BLOOM and save checkpoints in OUT.

    The model (hidden 128, 4 layers, 4 heads by default) learns from the text of the
    embedded PUD sample (500 sentences in each of 8 languages) with a byte-level BPE
    tokenizer trained on the same text. Training is seeded and deterministic; the
    default run takes under 2 minutes on two idle CPU cores.

    Each checkpoint is OUT/step_<N>, loadable with transformers' from_pretrained, and
    OUT/manifest.json lists them with their training loss. Rerunning with the same
    options reuses a finished OUT.

    \b
    Example:
      xalign toy-checkpoints runs/toy
      xalign toy-checkpoints runs/toy-small --steps 0,20,40 --hidden-size 64 --layers 2
    """
    from tqdm import tqdm

    from xalign.toy import ToyConfig, train_toy_checkpoints

    config = ToyConfig(seed=seed, hidden_size=hidden_size, n_layer=layers, vocab_size=vocab_size)
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    bars: list[tqdm[None]] = []

    def on_step(step: int, loss: float) -> None:
        # Opened at the first step, so that it times training only and a reused OUT shows none.
        if not bars:
            bars.append(tqdm(total=config.steps[-1], desc="training", unit="step"))
        bars[0].set_postfix(loss=f"{loss:.3f}", refresh=False)
        bars[0].update(1)

    try:
        manifest = train_toy_checkpoints(out, config, on_step=on_step, overwrite=overwrite)
    finally:
        for bar in bars:
            bar.close()
    if not bars and config.steps[-1] > 0:
        click.echo(f"{out} already holds these checkpoints; reused them (--overwrite to train again)")
    losses = dict(manifest.losses)
    rows = [(step, os.path.join(out, path), f"{losses[step]:.3f}") for step, path in manifest.checkpoints]
    click.echo(
        f"{len(rows)} checkpoints of {manifest.model_id} ({manifest.n_parameters:,} parameters) in {out}"
    )
    click.echo(render_table(("step", "checkpoint", "loss"), rows))
