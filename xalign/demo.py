"""The main job, end to end on the embedded data: ``xalign demo``.

Trains a tiny multilingual BLOOM on the shipped PUD text and keeps checkpoints, extracts
their hidden states over the same parallel sentences, probes which neurons encode each
attribute in each language, measures how those neurons overlap across languages (against
chance), how well a classifier transfers between languages, how the two correlate, how close
parallel sentences are, and writes the report. Every stage reuses what an earlier run left,
so a second run only redoes what is missing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xalign import dims
from xalign.data import PUD_LANGUAGES

__all__ = ["DemoConfig", "DemoOutcome", "headline_lines", "run_demo"]

Echo = Callable[[str], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoConfig:
    """What the demo trains and analyses; the defaults fit in a few minutes on 2 CPU cores."""

    steps: tuple[int, ...] = (0, 100, 200, 400, 600)
    hidden_size: int = 128
    n_layer: int = 4
    languages: tuple[str, ...] = PUD_LANGUAGES
    k: int = 10
    """Neurons per top-k set (of ``hidden_size``)."""
    source: str = "en"
    """The language transfer and similarity start from."""
    layer: int | None = None
    """The layer the headline reports; None: the middle stored layer (fixed before looking)."""
    scheduler: str | None = "threads"
    """A local Dask scheduler (threads, processes, sync); None: the active client or Dask's default."""
    finetune_threads: int = 2
    """Torch threads of each fine-tuning task (they take turns within a process)."""

    def __post_init__(self) -> None:
        if self.source not in self.languages:
            raise ValueError(
                f"the source language {self.source} is not among the demo's languages "
                f"({', '.join(self.languages)})"
            )
        if self.k > self.hidden_size:
            raise ValueError(f"k ({self.k}) exceeds the number of neurons ({self.hidden_size}) of the toy")


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoOutcome:
    store: Path
    report: Path
    """The report's index.html."""
    headline: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0


def run_demo(
    out: Path,
    config: DemoConfig,
    *,
    echo: Echo,
    progress: Callable[..., Any] | None = None,
    client: Any = None,
) -> DemoOutcome:
    """Run every stage into ``out``; ``echo`` receives one line per stage and the headline.

    ``progress(total=..., desc=..., unit=...)`` may return a tqdm-like bar (``update``, ``close``).
    With a ``distributed.Client``, probing and transfer run on its cluster.
    """
    from xalign import api
    from xalign.analysis.finetune import FinetuneParams
    from xalign.analysis.overlap import summarize
    from xalign.analysis.sources import headline_layer
    from xalign.analysis.stats import holm
    from xalign.report import write_report
    from xalign.report.collect import collect_report

    out.mkdir(parents=True, exist_ok=True)
    toy, store = out / "toy", out / "toy.zarr"
    bars = _Bars(progress)
    started, cpu_started = time.perf_counter(), _cpu_seconds()

    echo(f"[1/8] training a tiny BLOOM on the PUD text, checkpoints {list(config.steps)} -> {toy}")
    manifest, trained = _train(toy, config, bars)
    losses = dict(manifest.losses)
    vocabulary = _vocabulary_size(toy, manifest)
    echo(
        ("      " if trained else "      reused; ")
        + "held-out loss "
        + ", ".join(f"step {s}: {losses[s]:.2f}" for s in config.steps)
        + f" nats per token (chance, a uniform guess over its {vocabulary:,} tokens: "
        + f"ln {vocabulary} = {math.log(vocabulary):.2f})"
    )

    echo(f"[2/8] extracting hidden states over {len(config.languages)} languages -> {store}")
    extracted = _extract(toy, store, config, bars)
    if not extracted.steps:
        echo(f"      reused; all {len(extracted.skipped)} checkpoints were extracted before")

    echo(f"[3/8] probing (Gaussian probe, greedy top {config.k}) -> {store}/results/probe")
    where = {"client": client, "scheduler": None if client is not None else config.scheduler}
    opened = api.open_store(store)
    bar = bars.open("probing", "slab")
    probed = api.persist(
        api.probe(opened, probe="gaussian", k=config.k),
        opened,
        "probe",
        on_slab=lambda _: bar.update(1),
        on_plan=lambda total: bar.set_total(total),
        **where,
    )
    bar.close()
    assert probed.report is not None
    if not probed.report.slabs_run:
        echo(f"      reused; all {probed.report.slabs_already_done} slabs were probed before")
    for line in _probed_attributes(probed.result):
        echo("      " + line)

    echo("[4/8] overlap of the neuron sets across languages, against chance")
    overlap = api.persist(api.overlap(opened, probe="probe"), opened)
    _reused(overlap, echo)
    echo("[5/8] zero-shot probe transfer of a linear classifier between languages")
    transfer = bars.persist(api.transfer(opened), opened, "transfer", "slab", where)
    _reused(transfer, echo)
    echo(
        f"[6/8] fine-tuning each checkpoint for UPOS on {config.source}; zero-shot accuracy on every "
        "language (independent of the overlap)"
    )
    params = FinetuneParams(sources=(config.source,), threads=config.finetune_threads)
    finetuned = bars.persist(api.finetune(opened, params), opened, "fine-tuning", "checkpoint", where)
    _reused(finetuned, echo)
    echo(
        f"[7/8] correlation of overlap with fine-tuned transfer from {config.source}; "
        "parallel-sentence similarity"
    )
    correlation = api.persist(
        api.correlate(opened, overlap="probe", transfer=f"finetune/{finetuned.name}", source=config.source),
        opened,
    )
    _reused(correlation, echo)
    _reused(api.persist(api.similarity(opened, reference=config.source), opened), echo)

    echo("[8/8] writing the report")
    data = collect_report(store, source=config.source, layer=config.layer)
    paths = write_report(data, out / "report")
    report = paths[-1]

    summary = summarize(overlap.result).sortby(dims.STEP).compute()
    flagged = [int(s) for s in data.health[dims.STEP].values[np.asarray(data.health["flagged"].values)]]
    layer, how = headline_layer(summary[dims.LAYER].values.tolist(), config.layer)
    first, last = summary.isel({dims.STEP: 0}), summary.isel({dims.STEP: -1})
    at_last = last.sel({dims.LAYER: layer})
    chance = float(overlap.result.attrs["parameters"]["chance"])
    gate = overlap.result.attrs["gate"]
    counts = overlap.result[["n_passed", "n_probed"]].sel({dims.LAYER: layer}).sortby(dims.STEP)
    # Cells probed at that step and layer (not those the filters skipped): the gate's denominator.
    counts = counts.isel({dims.STEP: -1}).compute()
    stats = correlation.result.sel({dims.LAYER: layer}).compute()
    tested = overlap.result[["mean_overlap", "mean_p", "n_languages"]].sel({dims.LAYER: layer})
    tested = tested.sortby(dims.STEP).isel({dims.STEP: -1}).compute()
    p_values = np.asarray(tested["mean_p"].values, dtype=np.float64)
    finite = np.isfinite(p_values)
    adjusted = np.full(p_values.shape, np.nan)
    adjusted[finite] = holm(p_values[finite]) if finite.any() else adjusted[finite]
    attributes = [
        {
            "attribute": str(attribute),
            "mean_overlap": float(tested["mean_overlap"].values[i]),
            "p_value": float(p_values[i]),
            "p_holm": float(adjusted[i]),
            "languages": int(tested["n_languages"].values[i]),
        }
        for i, attribute in enumerate(tested[dims.ATTRIBUTE].values)
        if finite[i]
    ]
    headline: dict[str, Any] = {
        "chance": chance,
        "layer": layer,
        "layer_choice": how,
        "first_step": int(first[dims.STEP]),
        "last_step": int(last[dims.STEP]),
        "overlap_first": float(first["mean_overlap"].sel({dims.LAYER: layer})),
        "overlap_last": float(at_last["mean_overlap"]),
        "attributes": attributes,
        "cells_passed_last": int(counts["n_passed"].sum()),
        "cells_probed_last": int(counts["n_probed"].sum()),
        "gate": gate,
        "pearson_r": float(stats["r"].sel({dims.STATISTIC: "pearson"})),
        "pearson_ci": (
            float(stats["ci_low"].sel({dims.STATISTIC: "pearson"})),
            float(stats["ci_high"].sel({dims.STATISTIC: "pearson"})),
        ),
        "n_cells": int(stats["n_cells"]),
        "transfer": _transfer_headline(finetuned.result, config.source),
        "flagged": flagged,
    }
    echo("")
    for line in headline_lines(headline, k=config.k, source=config.source):
        echo(line)
    echo(f"flagged checkpoints: {flagged or 'none'}")
    echo(f"report: {report}  (open it in a browser)")
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    where_cpu = "this process" if client is None else "this process, not the cluster's workers"
    echo(f"took {_minutes(wall)} wall, {_minutes(cpu)} of CPU ({where_cpu})")
    return DemoOutcome(store=store, report=report, headline=headline, wall_seconds=wall, cpu_seconds=cpu)


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


ALPHA = 0.05
"""The level of the demo's claims."""


def headline_lines(headline: dict[str, Any], *, k: int, source: str) -> list[str]:
    """The demo's findings in words, with their baselines, at the layer fixed before looking.

    Alignment is claimed only for attributes whose mean overlap over language pairs is above
    chance by the permutation test that respects the pairs' dependence
    (:mod:`xalign.analysis.mean_overlap`), after Holm's correction over the attributes, among
    cells whose probe beat its permutation null; otherwise the line says there is no evidence.
    """
    layer, last = headline["layer"], headline["last_step"]
    where = f"layer {layer} ({headline['layer_choice']})"
    lines = [
        f"probe quality gate at step {last}, {where}: {headline['cells_passed_last']} of "
        f"{headline['cells_probed_last']} probed (language, attribute) cells beat their permutation null "
        f"({headline['gate']['method'].upper()}, alpha {headline['gate']['alpha']})"
    ]
    chance = headline["chance"]
    tested = headline["attributes"]
    significant = [a for a in tested if a["p_holm"] <= ALPHA]
    if not tested:
        lines.append(
            f"no evidence of alignment at step {last}: no attribute has two languages whose probes "
            "passed the gate"
        )
    elif not significant:
        lines.append(
            f"no evidence of alignment at step {last}: in none of the {len(tested)} attributes tested is "
            f"the mean overlap of the top-{k} sets over language pairs above chance ({chance:.3f}) "
            "(permutation test of the mean over pairs, Holm over attributes)"
        )
    else:
        found = ", ".join(
            f"{a['attribute']} {a['mean_overlap']:.3f} ({a['mean_overlap'] / chance:.1f}x chance, "
            f"{a['languages']} languages, Holm p {a['p_holm']:.3g})"
            for a in significant
        )
        lines.append(
            f"evidence of alignment at step {last}: the mean overlap of the top-{k} sets over language "
            f"pairs is above chance ({chance:.3f}) in {len(significant)} of {len(tested)} attributes "
            f"(permutation test of the mean over pairs, Holm over attributes): {found}"
        )
    transfer = headline.get("transfer")
    if transfer:
        lines.append(
            f"fine-tuned UPOS transfer from {source} (mean over the other languages): "
            f"{transfer['first']:.2f} at step {transfer['first_step']} -> {transfer['last']:.2f} at step "
            f"{transfer['last_step']}; always predicting {source}'s most frequent tag: "
            f"{transfer['baseline']:.2f}; in {source} itself: {transfer['own']:.2f}"
        )
    low, high = headline["pearson_ci"]
    if headline["n_cells"] >= 3 and np.isfinite(headline["pearson_r"]):
        lines.append(
            f"overlap vs fine-tuned transfer from {source}, {where}: Pearson r = "
            f"{headline['pearson_r']:.2f} [{low:.2f}, {high:.2f}] over {headline['n_cells']} "
            "(step, language) cells (interval: bootstrap over steps and target languages)"
        )
    else:
        lines.append(
            f"overlap vs fine-tuned transfer from {source}, {where}: too few cells ({headline['n_cells']}) "
            "passed the gate for a correlation"
        )
    return lines


def _transfer_headline(result: Any, source: str) -> dict[str, float] | None:
    """Fine-tuned transfer from ``source`` at the first and last steps with results: the mean
    accuracy over the other languages, the majority-tag baseline and the in-language accuracy."""
    at = result.sel({dims.LANGUAGE: source}).sortby(dims.STEP).compute()
    done = at[dims.STEP].values[np.asarray(at["status"].values) == "done"]
    if len(done) == 0:
        return None
    others = [str(v) for v in at[dims.LANGUAGE_OTHER].values if str(v) != source]

    def mean(step: int, name: str) -> float:
        return float(at[name].sel({dims.STEP: step, dims.LANGUAGE_OTHER: others}).mean())

    first, last = int(done[0]), int(done[-1])
    return {
        "first_step": first,
        "last_step": last,
        "first": mean(first, "accuracy"),
        "last": mean(last, "accuracy"),
        "baseline": mean(last, "baseline"),
        "own": float(at["accuracy"].sel({dims.STEP: last, dims.LANGUAGE_OTHER: source})),
    }


def _reused(outcome: Any, echo: Echo) -> None:
    if not outcome.written:
        echo(f"      reused {outcome.path} (same parameters)")


def _vocabulary_size(toy: Path, manifest: Any) -> int:
    """Tokens the toy model predicts among (its config's ``vocab_size``)."""
    first = toy / manifest.checkpoints[0][1]
    return int(json.loads((first / "config.json").read_text(encoding="utf-8"))["vocab_size"])


def _train(toy: Path, config: DemoConfig, bars: _Bars) -> tuple[Any, bool]:
    """The toy run's manifest, and whether any step was trained now (False: reused)."""
    from xalign.toy import ToyConfig, train_toy_checkpoints

    toy_config = ToyConfig(
        steps=config.steps, hidden_size=config.hidden_size, n_layer=config.n_layer, languages=config.languages
    )
    bar = bars.open("training", "step", total=config.steps[-1])
    trained = [False]

    def on_step(step: int, loss: float) -> None:
        trained[0] = True
        bar.update(1)

    try:
        return train_toy_checkpoints(toy, toy_config, on_step=on_step), trained[0]
    finally:
        bar.close()


def _extract(toy: Path, store: Path, config: DemoConfig, bars: _Bars) -> Any:
    from xalign.data import pud_files
    from xalign.extract import ExtractConfig, extract_store
    from xalign.extract.checkpoints import from_directory

    name, checkpoints = from_directory(toy)
    bar = bars.open("extracting", "word")
    try:
        return extract_store(
            store,
            checkpoints,
            pud_files(list(config.languages)),
            ExtractConfig(model_id=name),
            progress=lambda words, _bytes: bar.update(words),
            on_plan=lambda total: bar.set_total(total),
        )
    finally:
        bar.close()


def _probed_attributes(result: Any) -> list[str]:
    """Which attributes each language has a probe for, and which languages have none (their
    treebanks leave no attribute with two values of enough words in each split)."""
    done = (result["status"] == "done").any(dims.STEP).compute()
    lines, empty = [], []
    for language in done[dims.LANGUAGE].values:
        attributes = [
            str(a)
            for a in done[dims.ATTRIBUTE].values
            if bool(done.sel({dims.LANGUAGE: language, dims.ATTRIBUTE: a}).any())
        ]
        if attributes:
            lines.append(f"{language}: {', '.join(attributes)}")
        else:
            empty.append(str(language))
    if empty:
        lines.append(
            f"no attribute passes the filters in {', '.join(empty)}: no probe there (xalign treebank-stats)"
        )
    return lines


class _Bars:
    """Progress bars when the caller gives a factory, silent ones otherwise."""

    def __init__(self, factory: Callable[..., Any] | None) -> None:
        self.factory = factory

    def open(self, desc: str, unit: str, total: int | None = None) -> _Bar:
        return _Bar(None if self.factory is None else self.factory(total=total, desc=desc, unit=unit))

    def persist(self, lazy: Any, store: Any, desc: str, unit: str, where: dict[str, Any]) -> Any:
        """:func:`xalign.persist` of a slab job, with a bar of its slabs."""
        from xalign import api

        bar = self.open(desc, unit)
        try:
            return api.persist(
                lazy,
                store,
                on_slab=lambda _: bar.update(1),
                on_plan=lambda total: bar.set_total(total),
                **where,
            )
        finally:
            bar.close()


class _Bar:
    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
