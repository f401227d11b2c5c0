"""``xalign probe``: which neurons encode each attribute, for every cell of a store."""

from __future__ import annotations

from typing import Any

import click

from xalign.analysis.probes import PROBES
from xalign.analysis.probing import ProbeParams
from xalign.cli.options import (
    dataclass_options,
    estimator_options,
    given_settings,
    int_list_option,
    preset_option,
    store_argument,
)
from xalign.cli.render import JSON_OPTION, Output

__all__ = ["probe"]


@click.command()
@store_argument()
@preset_option("probe")
@click.option(
    "--probe",
    "probe_kind",
    type=click.Choice(list(PROBES)),
    default=next(iter(PROBES)),
    show_default=True,
    help="gaussian: Torroba Hennigen et al. 2020, closed form; latent: Stanczak et al. 2023 (needs torch).",
)
@dataclass_options(ProbeParams, exclude=("probe",))
@int_list_option("--step", "steps", help="Only this step. Default: all.")
@int_list_option("--layer", "layers", help="Only this layer (a hidden-state index). Default: all.")
@click.option("--language", "languages", multiple=True, help="Only this language (repeatable).")
@click.option("--attribute", "attributes", multiple=True, help="Only this attribute (repeatable).")
@estimator_options(PROBES, what="probe")
@click.option("--name", default="probe", show_default=True, help="Results group: results/NAME.")
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    help="threads, processes, sync, local:N (a LocalCluster of N workers) or tcp://host:port.",
)
@click.option("--overwrite", is_flag=True, help="Replace results/NAME made with other parameters.")
@JSON_OPTION
@click.pass_context
def probe(
    ctx: click.Context,
    /,
    store: str,
    probe_kind: str,
    steps: tuple[int, ...],
    layers: tuple[int, ...],
    languages: tuple[str, ...],
    attributes: tuple[str, ...],
    name: str,
    scheduler: str,
    overwrite: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Greedy neuron selection for every (step, layer, language, attribute) cell of STORE.

    For each cell: fit the probe on train, add neurons one at a time by the criterion on
    dev (all candidates of a step scored at once), and record dev and test metrics at every
    size. Results go to STORE/results/NAME; rerun the command to resume an interrupted grid.
    Every hyperparameter of the probe is an option below and is stored with the results.

    \b
    Examples:
      xalign probe runs/toy.zarr --probe gaussian --k 20
      xalign probe runs/bloom.zarr --layer 12 --language en --language fr --scheduler local:2
      xalign probe runs/toy.zarr --max-epochs 5000 --patience 50   # the reference's schedule
      xalign probe runs/bloom.zarr --preset wang2024   # every choice the reference's
    """
    from dataclasses import fields

    import xalign
    from xalign.analysis.probes import make_probe
    from xalign.cli.cluster import compute_on
    from xalign.cli.progress import progress_bar

    grid = {f.name for f in fields(ProbeParams)}
    hyper = given_settings(
        ctx,
        PROBES[probe_kind],
        {k: v for k, v in settings.items() if k not in grid},
        kind=probe_kind,
        what="probe",
    )
    params = ProbeParams(
        probe=make_probe(probe_kind, **hyper), **{k: v for k, v in settings.items() if k in grid}
    )
    bar = progress_bar(unit="slab", desc="probing")
    cells = {"done": 0, "skipped": 0}

    def on_slab(summary: dict[str, int]) -> None:
        cells["done"] += summary["done"]
        cells["skipped"] += summary["skipped"]
        bar.update(1)
        bar.set_postfix_str(f"{cells['done']} cells probed, {cells['skipped']} skipped", refresh=False)

    try:
        with compute_on(scheduler) as where:
            opened = xalign.open_store(store)
            lazy = xalign.probe(
                opened,
                params,
                steps=steps or None,
                layers=layers or None,
                languages=languages or None,
                attributes=attributes or None,
            )
            outcome = xalign.persist(
                lazy,
                opened,
                name,
                overwrite=overwrite,
                on_slab=on_slab,
                on_plan=lambda total: setattr(bar, "total", total),
                **where,
            )
    finally:
        bar.close()
    report = outcome.report
    assert report is not None
    out = Output(as_json)
    out.echo(
        f"{outcome.path}: {report.slabs_run} slab(s) probed ({report.total('done')} cells, "
        f"{report.total('skipped')} skipped by the filters), {report.slabs_already_done} already done"
    )
    if report.most("dropped"):
        click.echo(
            f"warning: words that no subword encodes have no vector and were left out: up to "
            f"{report.most('dropped')} per cell (n_dropped in {outcome.path}; xalign info {store})",
            err=True,
        )
    out.add(
        group=outcome.path,
        slabs_run=report.slabs_run,
        slabs_already_done=report.slabs_already_done,
        cells_probed=report.total("done"),
        cells_skipped=report.total("skipped"),
        most_dropped_words=report.most("dropped"),
    )
    out.finish()
