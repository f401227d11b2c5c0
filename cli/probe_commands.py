"""``xalign probe``: which neurons encode each attribute, for every cell of a store."""

from __future__ import annotations

import click

from xalign.cli.options import filter_options

__all__ = ["probe"]


@click.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--probe",
    "probe_kind",
    type=click.Choice(["latent", "gaussian"]),
    default="latent",
    show_default=True,
    help="latent: Stanczak et al. 2023 (needs torch); gaussian: Torroba Hennigen et al. 2020 (closed form).",
)
@click.option(
    "--criterion",
    type=click.Choice(["mi", "accuracy", "loglik"]),
    default="mi",
    show_default=True,
    help="What greedy selection maximises on dev: normalised mutual information, accuracy or log-likelihood.",
)
@click.option("--k", type=click.IntRange(min=1), default=50, show_default=True, help="Neurons to select.")
@click.option("--step", "steps", type=int, multiple=True, help="Only this step (repeatable). Default: all.")
@click.option("--layer", "layers", type=int, multiple=True, help="Only this layer (repeatable).")
@click.option("--language", "languages", multiple=True, help="Only this language (repeatable).")
@click.option("--attribute", "attributes", multiple=True, help="Only this attribute (repeatable).")
@filter_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the latent probe.")
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Latent probe: epochs at most (the reference allowed 5000).",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Latent probe: epochs without improvement before stopping (the reference: 50).",
)
@click.option("--name", default="probe", show_default=True, help="Results group: results/NAME.")
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    help="threads, processes, sync, local:N (a LocalCluster of N workers) or tcp://host:port.",
)
@click.option("--overwrite", is_flag=True, help="Replace results/NAME made with other parameters.")
def probe(
    store: str,
    probe_kind: str,
    criterion: str,
    k: int,
    steps: tuple[int, ...],
    layers: tuple[int, ...],
    languages: tuple[str, ...],
    attributes: tuple[str, ...],
    min_count: int,
    min_values: int,
    seed: int,
    max_epochs: int,
    patience: int,
    name: str,
    scheduler: str,
    overwrite: bool,
) -> None:
    """Greedy neuron selection for every (step, layer, language, attribute) cell of STORE.

    For each cell: fit the probe on train, add neurons one at a time by the criterion on
    dev (all candidates of a step scored at once), and record dev and test metrics at every
    size. Results go to STORE/results/NAME; rerun the command to resume an interrupted grid.

    \b
    Examples:
      xalign probe runs/toy.zarr --probe gaussian --k 20
      xalign probe runs/bloom.zarr --layer 12 --language en --language fr --scheduler local:2
    """
    from tqdm import tqdm

    from xalign.analysis.probe_runner import run_probe_grid
    from xalign.analysis.probing import ProbeParams
    from xalign.cli.cluster import compute_on

    params = ProbeParams(
        probe=probe_kind,  # type: ignore[arg-type]
        criterion=criterion,
        k=k,
        min_count=min_count,
        min_values=min_values,
        seed=seed,
        max_epochs=max_epochs,
        patience=patience,
    )
    bar = tqdm(unit="slab", desc="probing", dynamic_ncols=True, disable=None)
    cells = {"done": 0, "skipped": 0}

    def on_slab(summary: dict[str, int]) -> None:
        cells["done"] += summary["done"]
        cells["skipped"] += summary["skipped"]
        bar.update(1)
        bar.set_postfix_str(f"{cells['done']} cells probed, {cells['skipped']} skipped", refresh=False)

    try:
        with compute_on(scheduler) as where:
            report = run_probe_grid(
                store,
                params=params,
                steps=steps or None,
                layers=layers or None,
                languages=languages or None,
                attributes=attributes or None,
                name=name,
                overwrite=overwrite,
                **where,
                on_slab=on_slab,
                on_plan=lambda total: setattr(bar, "total", total),
            )
    finally:
        bar.close()
    click.echo(
        f"results/{report.name}: {report.slabs_run} slab(s) probed ({report.cells_done} cells, "
        f"{report.cells_skipped} skipped by the filters), {report.slabs_already_done} already done"
    )
    if report.most_dropped:
        click.echo(
            f"warning: words that no subword encodes have no vector and were left out: up to "
            f"{report.most_dropped} per cell (n_dropped in results/{report.name}; xalign info {store})",
            err=True,
        )
