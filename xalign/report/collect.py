"""Gather what a report shows from a store: checkpoint health and the stored analyses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.correlation import transfer_cells
from xalign.analysis.gate import describe_gate_parameters
from xalign.analysis.health import checkpoint_health, flagged_steps
from xalign.analysis.overlap import summarize
from xalign.analysis.registry import ANALYSES
from xalign.analysis.sources import (
    PREFERRED_SOURCE,
    PROBE_TRANSFER_WARNING,
    TransferSource,
    choose_source,
    headline_layer,
    load_transfer,
)
from xalign.analysis.stats import correlate
from xalign.reference import departures
from xalign.report import CorrelationView, ReportData
from xalign.store.layout import ANALYSES_GROUP
from xalign.store.location import StoreLocation, describe_location
from xalign.store.outputs import analysis_path, open_output_dataset, output_names
from xalign.store.store import Store, open_store

__all__ = ["collect_report"]


def collect_report(
    location: StoreLocation,
    *,
    overlap_name: str | None = None,
    similarity_name: str | None = None,
    source: str | None = None,
    exclude_flagged: bool = False,
    n_boot: int = 2000,
    layer: int | None = None,
) -> ReportData:
    """The data of a report on the store at ``location``.

    Uses the named overlap and similarity analyses, or the first stored ones, and pairs the
    overlap with every stored transfer (built-in, and each task of imported scores) at the
    layer given, else the middle stored layer (:func:`~xalign.analysis.sources.headline_layer`:
    fixed before looking, never the layer that looks best). Flagged checkpoints are always marked;
    with ``exclude_flagged`` they are also left out of the correlations. Without ``source``,
    the source language of a stored correlation (``xalign correlate``) is used, else as
    :func:`~xalign.analysis.sources.choose_source` says; a note says which.
    """
    store = open_store(location)
    health = checkpoint_health(store).compute()
    flagged = flagged_steps(health)
    excluded = flagged if exclude_flagged else []
    notes = [
        f"Stale: {output.path} was made before the store last grew (new steps or languages); "
        "run it again to include them."
        for output in store.outputs()
        if output.stale
    ]
    overlap = _analysis(location, "overlap", overlap_name)
    summary = None
    shown_layer = None
    correlations: list[CorrelationView] = []
    if overlap is not None:
        overlap = overlap.compute()
        gate = overlap.attrs.get("gate")
        if gate:
            line = describe_gate_parameters(gate)
            notes.append(line[0].upper() + line[1:] + ".")
        if not np.isfinite(np.asarray(overlap["overlap"].values, dtype=np.float64)).any():
            notes.append(
                "No overlap to plot: no language pair has two cells whose probes passed the gate "
                "(no evidence that the probes found these attributes)."
            )
        summary = summarize(overlap).compute()
        layer, how = headline_layer([int(v) for v in overlap[dims.LAYER].values], layer)
        shown_layer = layer
        notes.append(f"Per-attribute and per-step figures and the scatter plots use layer {layer}: {how}.")
        languages = [str(v) for v in overlap[dims.LANGUAGE].values]
        source, how = _source(location, languages, source)
        notes.append(f"Correlations start from {source} ({how}).")
        transfers = _transfers(location)
        if source in languages:
            if any(not t.independent for t in transfers):
                notes.append(f"Probe transfer: {PROBE_TRANSFER_WARNING}.")
            for transfer in transfers:
                correlations.append(
                    _view(
                        overlap,
                        transfer,
                        load_transfer(store, transfer),
                        source,
                        layer,
                        flagged,
                        excluded,
                        n_boot,
                    )
                )
        elif transfers:
            notes.append(f"No correlation: the source language {source} has no overlap results.")
    else:
        notes.append("No overlap analysis in the store: run xalign probe and xalign overlap.")
    quality = None if overlap is None else _probe_quality(store, overlap)
    probe_parameters = None
    if overlap is not None and "probe" in overlap.attrs.get("parameters", {}):
        probe_parameters = store.results(str(overlap.attrs["parameters"]["probe"])).attrs.get("parameters")
    similarity = _analysis(location, "similarity", similarity_name)
    if exclude_flagged and flagged:
        notes.append(f"Flagged checkpoints {flagged} are left out of the correlations.")
    return ReportData(
        title=Path(describe_location(location)).name,
        model=str(store.provenance.get("model_id", "")),
        health=health,
        overlap=overlap,
        summary=summary,
        similarity=None if similarity is None else similarity.compute(),
        correlations=correlations,
        notes=notes,
        probe_quality=quality,
        finetuned=_finetuned(location),
        layer=shown_layer,
        departures=departures(
            store.provenance, probe_parameters, None if overlap is None else dict(overlap.attrs)
        ),
    )


def _finetuned(location: StoreLocation) -> xr.Dataset | None:
    """Accuracy and baseline of the fine-tuned transfer analysis of the default name (else the
    first), in memory; None without one."""
    names = analysis_names(location, "finetune")
    if not names:
        return None
    name = ANALYSES["finetune"].default_name if ANALYSES["finetune"].default_name in names else names[0]
    return open_analysis(location, "finetune", name)[["accuracy", "baseline"]].compute()


def _probe_quality(store: Store, overlap: xr.Dataset) -> xr.Dataset | None:
    """Test MI of each cell's k neurons, its null mean and whether it passed, for the overlap's run."""
    parameters = overlap.attrs.get("parameters", {})
    if "passed" not in overlap or "probe" not in parameters:
        return None
    results = store.results(str(parameters["probe"]))
    if "gate_null_mi" not in results:
        return None
    k = int(parameters["k"])
    return xr.Dataset(
        {
            "test_mi": results["test_mi"].isel({dims.RANK: k - 1}, drop=True),
            "null_mi": results["gate_null_mi"],
            "passed": overlap["passed"],
        }
    ).compute()


def _source(location: StoreLocation, languages: list[str], source: str | None) -> tuple[str, str]:
    """The source language of the correlations, and how it was chosen."""
    if source is not None:
        return source, "as asked"
    for name in analysis_names(location, "correlation"):
        stored = open_analysis(location, "correlation", name).attrs.get("parameters", {}).get("source")
        if stored in languages:
            return str(stored), f"the source of the stored correlation {name}"
    chosen, _ = choose_source(languages, None)
    return chosen, "the default" if chosen == PREFERRED_SOURCE else f"no {PREFERRED_SOURCE} in the store"


def analysis_names(location: StoreLocation, kind: str) -> list[str]:
    return output_names(location, f"{ANALYSES_GROUP}/{kind}")


def open_analysis(location: StoreLocation, kind: str, name: str) -> xr.Dataset:
    return open_output_dataset(location, analysis_path(kind, name))


def _analysis(location: StoreLocation, kind: str, name: str | None) -> xr.Dataset | None:
    names = analysis_names(location, kind)
    if name is None:
        if not names:
            return None
        name = names[0]
    return open_analysis(location, kind, name)


def _transfers(location: StoreLocation) -> list[TransferSource]:
    """Every stored transfer: fine-tuned and imported first, probe transfer (not independent) last."""
    found = [TransferSource(name=name, kind="finetune") for name in analysis_names(location, "finetune")]
    for name in analysis_names(location, "transfer_scores"):
        scores = open_analysis(location, "transfer_scores", name)
        found += [TransferSource(name=name, task=str(task)) for task in scores[dims.TASK].values]
    return found + [TransferSource(name=name) for name in analysis_names(location, "transfer")]


def _view(
    overlap: xr.Dataset,
    transfer: TransferSource,
    scores: xr.DataArray,
    source: str,
    layer: int,
    flagged: list[int],
    excluded: list[int],
    n_boot: int,
) -> CorrelationView:
    cells = transfer_cells(overlap, scores, source=source).sel({dims.LAYER: layer}).compute()
    flat = cells.stack(cell=(dims.STEP, dims.LANGUAGE_OTHER))
    x = np.asarray(flat["overlap"].values, dtype=np.float64)
    y = np.asarray(flat["transfer"].values, dtype=np.float64)
    steps = np.asarray(flat[dims.STEP].values, dtype=np.int64)
    keep = np.isfinite(x) & np.isfinite(y)
    is_flagged = np.isin(steps, flagged)
    counted = keep & ~np.isin(steps, excluded)
    targets = np.asarray(flat[dims.LANGUAGE_OTHER].values, dtype=object).astype(str)
    stats = {
        method: correlate(
            x[counted], y[counted], method=method, n_boot=n_boot, clusters=(steps[counted], targets[counted])
        )
        for method in ("pearson", "spearman")
    }
    what = {
        "transfer": "accuracy of a linear classifier on its hidden states",
        "finetune": "UPOS accuracy of the fine-tuned model",
    }.get(transfer.analysis, f"{transfer.task} score")
    return CorrelationView(
        title=f"Overlap with {source} vs transfer from {source}: {transfer.label()}, layer {layer}",
        x_label=f"overlap coefficient with {source} (mean over attributes)",
        y_label=f"transfer from {source}: {what}",
        x=x[keep],
        y=y[keep],
        point_step=steps[keep],
        point_language=np.asarray(flat[dims.LANGUAGE_OTHER].values, dtype=object)[keep],
        flagged=is_flagged[keep],
        stats=stats,
    )
