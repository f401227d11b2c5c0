"""The public API: a store in, a lazy ``xr.Dataset`` out; :func:`persist` stores any of them.

Every analysis is a function of a :class:`~xalign.store.store.Store` (or its location) that
returns a lazy Dataset whose attrs say which analysis made it (``kind``) and how
(``parameters``). Nothing is read or computed until the caller computes, on the active
``distributed.Client`` if there is one, like any Dask collection. :func:`persist` writes a
result into the store; the command line is a thin shell over these functions.

Examples
--------
>>> import xalign
>>> from distributed import Client
>>> client = Client(n_workers=2, threads_per_worker=1)      # yours; xalign starts none
>>> store = xalign.open_store("runs/toy.zarr")
>>> grid = xalign.probe(store, probe="gaussian", k=10, layers=[2])   # lazy
>>> grid["test_mi"].sel(rank=9).mean("attribute").compute()
>>> xalign.persist(grid, store, name="probe")               # resumable, on the client
>>> pairs = xalign.overlap(store, probe="probe", k=10)
>>> pairs["overlap"].sel(step=1000, layer=2, attribute="Number").plot()
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis import correlation as _correlation
from xalign.analysis import health as _health
from xalign.analysis import overlap as _overlap
from xalign.analysis import similarity as _similarity
from xalign.analysis.engine import JobReport, lazy_result, run_job
from xalign.analysis.finetune import FinetuneParams, finetune_job
from xalign.analysis.gate import CorrectionMethod, gate
from xalign.analysis.mean_overlap import mean_overlap_test
from xalign.analysis.probing import ProbeParams, check_selection_size, probe_job
from xalign.analysis.registry import ANALYSES, kind_of, open_stored
from xalign.analysis.sources import (
    PROBE_TRANSFER_WARNING,
    TransferSource,
    choose_source,
    default_transfer,
    load_transfer,
    parse_transfer,
)
from xalign.analysis.transfer import PAIR_DIMS, TransferParams, transfer_job
from xalign.analysis.transfer_scores import read_transfer_scores
from xalign.store.location import StoreLocation
from xalign.store.outputs import ResultsError, open_output_dataset, write_output
from xalign.store.store import Store, open_store

__all__ = [
    "Persisted",
    "compare",
    "correlate",
    "finetune",
    "health",
    "import_transfer_scores",
    "open_store",
    "overlap",
    "persist",
    "probe",
    "similarity",
    "transfer",
]


def _opened(store: Store | StoreLocation) -> Store:
    return store if isinstance(store, Store) else open_store(store)


def _made(result: xr.Dataset, kind: str, parameters: dict[str, Any]) -> xr.Dataset:
    result.attrs = {**result.attrs, "kind": kind, "parameters": parameters}
    return result


def _excluded(store: Store, exclude_flagged: bool) -> list[int]:
    return _health.flagged_steps(_health.checkpoint_health(store)) if exclude_flagged else []


def _mask_steps(ds: xr.Dataset, steps: Sequence[int]) -> xr.Dataset:
    """NaN at ``steps`` in every float variable that runs along step."""
    if not steps:
        return ds
    keep = xr.DataArray(~np.isin(ds[dims.STEP].values, np.asarray(steps)), dims=(dims.STEP,))
    return ds.assign(
        {
            name: var.where(keep)
            for name, var in ds.data_vars.items()
            if dims.STEP in var.dims and np.issubdtype(var.dtype, np.floating)
        }
    )


def probe(
    store: Store | StoreLocation,
    params: ProbeParams | None = None,
    *,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    attributes: Sequence[str] | None = None,
    **settings: Any,
) -> xr.Dataset:
    """Greedy neuron selection for every selected (step, layer, language, attribute) cell, lazily.

    ``params``, or ``settings`` (the fields of :class:`~xalign.analysis.probing.ProbeParams`:
    ``probe`` (a probe object or name), ``k``, ``criterion``, ``min_count``, ``min_values``).
    One task per (step, layer, language) slab.

    Examples
    --------
    >>> from xalign.analysis.latent import LatentProbe
    >>> grid = xalign.probe(store, probe=LatentProbe(max_epochs=5000, patience=50), k=20, layers=[12])
    >>> grid["test_mi"].sel(rank=19).to_dataframe()
    """
    params = _params(ProbeParams, params, settings)
    return lazy_result(
        probe_job(
            _opened(store), params, steps=steps, layers=layers, languages=languages, attributes=attributes
        )
    )


def finetune(
    store: Store | StoreLocation,
    params: FinetuneParams | None = None,
    *,
    steps: Sequence[int] | None = None,
    targets: Sequence[str] | None = None,
    checkpoints: Mapping[int, Any] | None = None,
    exclude_flagged: bool = False,
    **settings: Any,
) -> xr.Dataset:
    """Fine-tuned zero-shot transfer, lazily: one task per checkpoint.

    Each step's model (from where the store says it came, or ``checkpoints``: step ->
    :class:`~xalign.extract.checkpoints.Checkpoint`) is fine-tuned for UPOS on each source's
    train sentences, the epoch chosen on its dev sentences, and tested on every target's test
    sentences (:mod:`xalign.analysis.finetune`). It reads no stored hidden state, so unlike
    :func:`transfer` it is independent of the overlap. ``settings``: the fields of
    :class:`~xalign.analysis.finetune.FinetuneParams`; the source defaults to English where
    the store has it, else its first language.

    Examples
    --------
    >>> acc = xalign.finetune(store, epochs=3)["accuracy"].sel(language="en")
    >>> acc.plot(x="step", hue="language_other")
    """
    params = _params(FinetuneParams, params, settings)
    opened = _opened(store)
    if not params.sources:
        params = replace(params, sources=(choose_source(list(opened.languages), None)[0],))
    steps, excluded = _unflagged(opened, steps, exclude_flagged)
    job = finetune_job(opened, params, steps=steps, targets=targets, checkpoints=checkpoints)
    return _lazy(job, excluded)


def _unflagged(
    store: Store, steps: Sequence[int] | None, exclude_flagged: bool
) -> tuple[Sequence[int] | None, list[int]]:
    """``steps`` (None: all) without the flagged ones when asked, and the flagged ones left out."""
    excluded = _excluded(store, exclude_flagged)
    if excluded:
        steps = [s for s in (store.steps.tolist() if steps is None else steps) if s not in excluded]
    return steps, excluded


def _lazy(job: Any, excluded: list[int]) -> xr.Dataset:
    """A slab job's lazy result, its parameters with the steps left out as flagged."""
    result = lazy_result(job)
    result.attrs["parameters"] = {**job.parameters, "excluded_steps": excluded}
    return result


def compare(
    stores: Mapping[str, Store | StoreLocation] | Sequence[Store | StoreLocation], *, overlap: str = "probe"
) -> xr.Dataset:
    """Several models side by side, each from its own store: a Dataset with a ``model`` dim.

    Per model and step, at each model's headline layer: ``mean_overlap``,
    ``multiple_of_chance``, ``fraction_of_ceiling``, the gate's ``n_passed`` / ``n_probed``,
    ``heldout_loss``; per model, the stored correlation's ``r``, ``ci_low``, ``ci_high``,
    ``n_cells`` and ``correlation_transfer``, and ``layer``, ``chance`` and ``n_neurons``
    (:mod:`xalign.analysis.compare`). ``stores``: label -> store, or stores labelled by their
    model ids.

    Examples
    --------
    >>> both = xalign.compare({"560m": "bloom-560m.zarr", "1b1": "bloom-1b1.zarr"})
    >>> both["multiple_of_chance"].plot(x="step", hue="model")
    """
    from xalign.analysis.compare import compare_stores

    if isinstance(stores, Mapping):
        return compare_stores([_opened(s) for s in stores.values()], labels=list(stores), overlap=overlap)
    return compare_stores([_opened(s) for s in stores], overlap=overlap)


def _params(cls: Any, params: Any, settings: dict[str, Any]) -> Any:
    if params is not None and settings:
        raise TypeError(f"give params or settings ({', '.join(settings)}), not both")
    return params if params is not None else cls(**settings)


def transfer(
    store: Store | StoreLocation,
    params: TransferParams | None = None,
    *,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
    exclude_flagged: bool = False,
    **settings: Any,
) -> xr.Dataset:
    """Probe transfer between every pair of languages, lazily: one task per (step, layer) slab.

    A shrinkage LDA of each attribute is trained on a source language's train words and
    tested on each target's test words. It reads the same hidden states as the overlap, so it
    is not an independent test of it. ``settings``: the fields of
    :class:`~xalign.analysis.transfer.TransferParams`. With ``exclude_flagged``, flagged
    checkpoints are left out (their steps are not in the result).

    Examples
    --------
    >>> acc = xalign.transfer(store, layers=[2])["accuracy"]
    >>> acc.sel(attribute="Number", language="en").plot(x="step", hue="language_other")
    """
    params = _params(TransferParams, params, settings)
    opened = _opened(store)
    steps, excluded = _unflagged(opened, steps, exclude_flagged)
    job = transfer_job(opened, params, steps=steps, layers=layers, languages=languages)
    return _lazy(job, excluded)


def overlap(
    store: Store | StoreLocation,
    *,
    probe: str = "probe",
    k: int | None = None,
    exclude_flagged: bool = False,
    gated: bool = True,
    gate_alpha: float = 0.05,
    gate_method: CorrectionMethod = "bh",
    n_permutations: int = 1000,
    seed: int = 0,
) -> xr.Dataset:
    """Overlap of the top-k neuron sets of the stored probing run ``results/<probe>``, lazily.

    For every (step, layer, attribute) and language pair: the shared neurons, the overlap
    coefficient and Jaccard index, and the exact hypergeometric p-value against random sets
    (Holm-corrected over pairs). ``k`` defaults to the run's selection size. By default only
    cells whose probe beats its permutation null (:mod:`xalign.analysis.gate`, corrected over
    every probed cell by ``gate_method`` at ``gate_alpha``) take part: a pair with a cell that
    failed is NaN. ``passed`` (per cell) and ``n_passed`` of ``n_probed`` (languages per step,
    layer, attribute) say which did; ``gated=False`` uses every probed cell. Per (step, layer,
    attribute), ``mean_overlap`` over the pairs and its ``mean_p``: the permutation test of
    :mod:`xalign.analysis.mean_overlap` (``n_permutations`` draws), which respects that the
    pairs share their languages' sets. Where the probing run measured each cell's
    reproducibility (``self_overlap``, from selections on resampled training words), the
    noise ceiling: ``ceiling`` per pair (the geometric mean of the two languages'),
    ``mean_ceiling`` and ``fraction_of_ceiling`` = (mean overlap - chance) / (mean ceiling -
    chance) per (step, layer, attribute).

    Examples
    --------
    >>> pairs = xalign.overlap(store, k=10)
    >>> pairs["overlap"].sel(step=1000, layer=2, attribute="Number").plot()
    >>> pairs["n_passed"].sel(attribute="Number").to_pandas()
    """
    opened = _opened(store)
    results = open_stored(opened, "probe", probe)
    n_neurons = opened.n_neurons
    # Ranks past the neuron count (a selection asked for more neurons than there are) hold no neuron.
    selection = min(int(results.sizes[dims.RANK]), n_neurons)
    k = selection if k is None else k
    try:
        check_selection_size(k, n_neurons=n_neurons, selection=selection)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None
    excluded = _excluded(opened, exclude_flagged)
    passed = gate(results, alpha=gate_alpha, method=gate_method)
    applied = gated and bool(passed.attrs["available"])
    selected = results["selected_neuron"]
    if applied:
        selected = selected.where(passed, -1)
    pairs = _overlap.overlap(selected, k=k, n_neurons=n_neurons).transpose(*PAIR_DIMS)
    probed = selected_probed = results["selected_neuron"].isel({dims.RANK: 0}, drop=True) >= 0
    if "gate_p" in results:
        probed = results["gate_p"].notnull() & selected_probed
    pairs = pairs.assign(
        passed=passed.astype(bool),
        n_passed=passed.sum(dims.LANGUAGE).astype(np.int64),
        n_probed=probed.sum(dims.LANGUAGE).astype(np.int64),
    )
    pairs.attrs.update(k=k, n_neurons=n_neurons)
    tested = mean_overlap_test(pairs, n_permutations=n_permutations, seed=seed)
    pairs = pairs.assign(
        mean_overlap=tested["mean_overlap"], mean_p=tested["p_value"], n_languages=tested["n_languages"]
    )
    if "self_overlap" in results:
        pairs = pairs.assign(_ceiling(pairs, results["self_overlap"], k / n_neurons))
    asked = {"applied": applied, "alpha": gate_alpha, "method": gate_method}
    parameters = {
        "probe": probe,
        "k": k,
        "n_neurons": n_neurons,
        "chance": k / n_neurons,
        "excluded_steps": excluded,
        "mean_test": {"n_permutations": n_permutations, "seed": seed},
        "gate": asked,
    }
    made = _made(_mask_steps(pairs, excluded), "overlap", parameters)
    # What the gate found (not how the overlap was asked for): beside the parameters.
    made.attrs["gate"] = {
        **asked,
        "available": bool(passed.attrs["available"]),
        "family": int(passed.attrs["family"]),
        "passed": int(passed.sum()),
    }
    return made


def _ceiling(pairs: xr.Dataset, self_overlap: xr.DataArray, chance: float) -> dict[str, xr.DataArray]:
    """The noise ceiling of each pair (the geometric mean of the two languages' reproducibility),
    its mean over the pairs the overlap averages, and the overlap as a fraction of the
    chance-to-ceiling range."""
    mine = self_overlap.where(pairs["overlap"].notnull().any(dims.LANGUAGE_OTHER))
    theirs = mine.rename({dims.LANGUAGE: dims.LANGUAGE_OTHER})
    ceiling = ((mine * theirs) ** 0.5).where(pairs["overlap"].notnull()).transpose(*PAIR_DIMS)
    mean_ceiling = _overlap.pair_mean(xr.Dataset({"overlap": ceiling}).assign_attrs(pairs.attrs))
    return {
        "ceiling": ceiling,
        "mean_ceiling": mean_ceiling.rename(None),
        "fraction_of_ceiling": (pairs["mean_overlap"] - chance) / (mean_ceiling - chance),
    }


def similarity(
    store: Store | StoreLocation, *, reference: str | None = None, exclude_flagged: bool = False
) -> xr.Dataset:
    """Cosine similarity of parallel sentences between ``reference`` and every language, lazily.

    ``reference`` defaults to English where the store has it, else its first language.

    Examples
    --------
    >>> xalign.similarity(store)["mean_cosine"].sel(layer=2).plot(x="step", hue="language")
    """
    opened = _opened(store)
    reference, _ = choose_source(opened.languages, reference, what="reference")
    excluded = _excluded(opened, exclude_flagged)
    result = _mask_steps(_similarity.parallel_similarity(opened, reference=reference), excluded)
    return _made(result, "similarity", {"reference": reference, "excluded_steps": excluded})


def health(
    store: Store | StoreLocation, *, loss_tolerance: float = _health.DEFAULT_LOSS_TOLERANCE
) -> xr.Dataset:
    """Per checkpoint: duplicate weights and anomalous held-out loss, and whether it is flagged.

    Examples
    --------
    >>> h = xalign.health(store).compute()
    >>> h.step[h.flagged].values
    """
    return _health.checkpoint_health(_opened(store), loss_tolerance=loss_tolerance)


def import_transfer_scores(
    store: Store | StoreLocation,
    path: Path | str | Sequence[Path | str],
    *,
    model: str | None = None,
    exclude_flagged: bool = False,
) -> xr.Dataset:
    """Transfer scores from files: CSV or JSON rows (step or revision, language, task, score),
    a wide CSV table (a column per language), or lm-evaluation-harness results (one JSON file
    per revision); see :mod:`xalign.analysis.transfer_scores`.

    Every row is checked against the store's revisions and languages; every bad one is listed
    with its file and line.

    Examples
    --------
    >>> scores = xalign.import_transfer_scores(store, "xnli.csv", model="bloom-560m")
    >>> xalign.persist(scores, store, name="xnli")
    >>> xalign.import_transfer_scores(store, sorted(Path("lm-eval").glob("*.json")))
    """
    opened = _opened(store)
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    excluded = _excluded(opened, exclude_flagged)
    scores = read_transfer_scores(paths, steps=opened.revisions, languages=opened.languages, model=model)
    digest = hashlib.sha256()
    for one in paths:
        digest.update(one.read_bytes())
    parameters = {
        "file": ", ".join(str(p) for p in paths),
        "sha256": digest.hexdigest(),
        "model": model or "",
        "excluded_steps": excluded,
    }
    made = _made(_mask_steps(scores.to_dataset(name="score"), excluded), "transfer_scores", parameters)
    if "skipped" in scores.attrs:
        made.attrs["skipped"] = scores.attrs["skipped"]
    return made


def correlate(
    store: Store | StoreLocation,
    *,
    overlap: str = "probe",
    transfer: TransferSource | str | None = None,
    source: str | None = None,
    exclude_flagged: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Correlation of the stored overlap with a stored transfer over (step, language) cells, per layer.

    ``transfer`` is a :class:`~xalign.analysis.sources.TransferSource` or its text
    (``finetune/NAME``, ``transfer/NAME`` for probe transfer, ``NAME:TASK`` for imported scores;
    :func:`~xalign.analysis.sources.parse_transfer`). By default the first fine-tuned transfer,
    else the first imported scores: probe transfer reads the same hidden states as the overlap,
    so it is used only when asked, and the result then carries a ``warning`` attr. ``source``
    defaults to English where the overlap has it, else its first language.

    Examples
    --------
    >>> xalign.correlate(store, transfer=TransferSource(name="xnli", task="xnli"))["r"].to_pandas()
    """
    opened = _opened(store)
    if transfer is None:
        transfer = default_transfer(opened)
    elif isinstance(transfer, str):
        transfer = parse_transfer(opened, transfer)
    pairs = open_stored(opened, "overlap", overlap)
    source, _ = choose_source([str(v) for v in pairs[dims.LANGUAGE].values], source)
    excluded = _excluded(opened, exclude_flagged)
    cells = _correlation.transfer_cells(pairs, load_transfer(opened, transfer), source=source)
    result = _correlation.correlate_cells(
        cells, exclude_steps=excluded, n_boot=n_boot, confidence=confidence, seed=seed
    )
    parameters = {
        "overlap": overlap,
        "transfer": transfer.describe(),
        "source": source,
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
        "interval": _correlation.CLUSTER_INTERVAL,
        "excluded_steps": excluded,
    }
    made = _made(result, "correlation", parameters)
    made.attrs["measure"] = transfer.label()
    if not transfer.independent:
        made.attrs["warning"] = PROBE_TRANSFER_WARNING
    return made


@dataclass(frozen=True, kw_only=True, slots=True)
class Persisted:
    """What :func:`persist` did, and the stored output, opened lazily.

    Examples
    --------
    >>> done = xalign.persist(xalign.overlap(store), store)
    >>> done.path, done.written, done.result.attrs["parameters"]["chance"]
    """

    kind: str
    name: str
    path: str
    written: bool
    """False when the same output, not stale, was already stored (nothing was computed)."""
    result: xr.Dataset
    report: JobReport | None = None
    """For an analysis run slab by slab: the slabs run and what each reported."""

    @property
    def excluded(self) -> tuple[int, ...]:
        """Steps left out as flagged."""
        return tuple(self.result.attrs.get("parameters", {}).get("excluded_steps", ()))


def persist(
    result: xr.Dataset,
    store: Store | StoreLocation,
    name: str | None = None,
    *,
    overwrite: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    on_slab: Callable[[dict[str, int]], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> Persisted:
    """Store a result of this module into ``store`` (``results/<name>`` or ``analyses/<kind>/<name>``).

    A result computed slab by slab (probing, transfer) is not computed here as one graph: its
    slabs are run by the engine (:func:`~xalign.analysis.engine.run_job`), each writing its own
    chunks, so a rerun resumes and does only what is missing; ``client``/``scheduler`` say
    where (default: the active ``distributed.Client``, else Dask's default scheduler). Others
    are computed and written whole. The same output with the same parameters is reused
    unless the store grew since; other parameters are refused unless ``overwrite``.

    Examples
    --------
    >>> xalign.persist(xalign.probe(store, probe="gaussian", k=10), store, name="probe")
    >>> xalign.persist(xalign.overlap(store), store)      # analyses/overlap/probe
    >>> store.analysis("overlap", "probe")

    Raises
    ------
    ResultsError
        If the result was not made by xalign, or the output exists with other parameters.
    """
    kind = kind_of(result)
    opened = _opened(store)
    name = name or _default_name(kind.name, result)
    path = kind.path(name)
    if kind.slab_job is not None:
        job = kind.slab_job(opened, result)
        report = run_job(
            job,
            path,
            client=client,
            scheduler=scheduler,
            overwrite=overwrite,
            on_slab=on_slab,
            on_plan=on_plan,
        )
        return Persisted(
            kind=kind.name,
            name=name,
            path=path,
            written=report.slabs_run > 0,
            result=open_output_dataset(opened.location, path),
            report=report,
        )
    written = write_output(opened.location, path, result, overwrite=overwrite, follows_store=kind.from_store)
    return Persisted(
        kind=kind.name,
        name=name,
        path=path,
        written=written,
        result=open_output_dataset(opened.location, path),
    )


def _default_name(kind: str, result: xr.Dataset) -> str:
    parameters = result.attrs.get("parameters", {})
    if kind == "overlap":
        return str(parameters["probe"])
    if kind == "correlation":
        transfer = str(parameters["transfer"]).split("/", 1)[1].replace(":", "-")
        return f"{parameters['overlap']}-{transfer}"
    if kind == "transfer_scores":
        return Path(str(parameters["file"]).split(", ")[0]).stem
    return ANALYSES[kind].default_name
