"""The analyses xalign knows: where each is stored, what it depends on, how it is run.

The store layer knows only where outputs live (:mod:`xalign.store.outputs`); this registry
knows which analyses there are. An analysis computed slab by slab (probing, transfer) can
rebuild its :class:`~xalign.analysis.engine.SlabJob` from a lazy result (its parameters and
coordinates), which is how :func:`xalign.persist` stores it: region by region, resumably, with
the same slab function that made the lazy result. The others are small and stored whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import xarray as xr

from xalign import dims
from xalign.analysis.engine import SlabJob
from xalign.store.outputs import ResultsError, analysis_path, open_output_dataset, output_names, results_path
from xalign.store.store import Store

__all__ = ["ANALYSES", "AnalysisKind", "kind_of", "open_stored"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisKind:
    """One kind of analysis."""

    name: str
    description: str
    default_name: str
    depends_on: tuple[str, ...] = ()
    """Kinds whose stored outputs this one reads."""
    from_store: bool = True
    """False for what is imported (transfer scores): it does not go stale when the store grows."""
    slab_job: Callable[[Store, xr.Dataset], SlabJob] | None = None
    """Rebuilds the job of a lazy result; None for an analysis stored whole."""

    def path(self, name: str) -> str:
        """Where an output of this kind named ``name`` is stored."""
        return results_path(name) if self.name == "probe" else analysis_path(self.name, name)


def _values(result: xr.Dataset, dim: str) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in result[dim].values]


def _probe_job(store: Store, result: xr.Dataset) -> SlabJob:
    from xalign.analysis.probing import ProbeParams, probe_job

    job = probe_job(
        store,
        ProbeParams.from_dict(result.attrs["parameters"]),
        steps=_values(result, dims.STEP),
        layers=_values(result, dims.LAYER),
        languages=[str(v) for v in result[dims.LANGUAGE].values],
        attributes=[str(v) for v in result[dims.ATTRIBUTE].values],
    )
    return replace(job, parameters=dict(result.attrs["parameters"]))


def _transfer_job(store: Store, result: xr.Dataset) -> SlabJob:
    from xalign.analysis.transfer import TransferParams, transfer_job

    stored = result.attrs["parameters"]
    params = TransferParams(
        attributes=tuple(stored["attributes"]),
        min_count=int(stored["min_count"]),
        min_values=int(stored["min_values"]),
        shrinkage=float(stored["shrinkage"]),
    )
    job = transfer_job(
        store,
        params,
        steps=_values(result, dims.STEP),
        layers=_values(result, dims.LAYER),
        languages=[str(v) for v in result[dims.LANGUAGE].values],
    )
    return replace(job, parameters=dict(stored))


def _finetune_job(store: Store, result: xr.Dataset) -> SlabJob:
    from xalign.analysis.finetune import FinetuneParams, finetune_job, stored_checkpoints

    stored = result.attrs["parameters"]
    job = finetune_job(
        store,
        FinetuneParams.from_dict(stored),
        steps=_values(result, dims.STEP),
        targets=[str(v) for v in result[dims.LANGUAGE_OTHER].values],
        checkpoints=stored_checkpoints(stored),
    )
    return replace(job, parameters=dict(stored))


ANALYSES: dict[str, AnalysisKind] = {
    kind.name: kind
    for kind in (
        AnalysisKind(
            name="probe",
            description="greedy neuron selection per (step, layer, language, attribute)",
            default_name="probe",
            slab_job=_probe_job,
        ),
        AnalysisKind(
            name="overlap",
            description="overlap of the top-k neuron sets across languages",
            default_name="probe",
            depends_on=("probe",),
        ),
        AnalysisKind(
            name="transfer",
            description="probe transfer: a linear classifier trained on one language's hidden states, "
            "tested on another's (the same representations as the overlap; not an independent test)",
            default_name="linear",
            slab_job=_transfer_job,
        ),
        AnalysisKind(
            name="finetune",
            description="fine-tuned transfer: the model fine-tuned for UPOS on one language, tested on "
            "the others (independent of the stored hidden states)",
            default_name="upos",
            slab_job=_finetune_job,
        ),
        AnalysisKind(
            name="transfer_scores",
            description="transfer scores imported from a file",
            default_name="scores",
            from_store=False,
        ),
        AnalysisKind(
            name="correlation",
            description="correlation of overlap with transfer over (step, language) cells",
            default_name="probe-linear",
            depends_on=("overlap", "transfer", "finetune", "transfer_scores"),
        ),
        AnalysisKind(
            name="similarity",
            description="cosine similarity of parallel sentences",
            default_name="parallel",
        ),
    )
}


def kind_of(result: xr.Dataset) -> AnalysisKind:
    """The kind of a result made by xalign (its ``kind`` attr).

    Raises
    ------
    ResultsError
        If the result does not say, or names a kind xalign does not know.
    """
    kind = result.attrs.get("kind")
    if kind not in ANALYSES:
        raise ResultsError(
            f"this Dataset does not say which xalign analysis made it (attrs['kind'] = {kind!r}); "
            f"known: {', '.join(ANALYSES)}"
        )
    return ANALYSES[str(kind)]


def open_stored(store: Store, kind: str, name: str) -> xr.Dataset:
    """The stored output ``name`` of ``kind``, lazily; a missing one is a :class:`ResultsError`
    naming the ones there are, or the command that makes it.

    Examples
    --------
    >>> open_stored(store, "overlap", "probe")["overlap"]
    """
    path = ANALYSES[kind].path(name)
    try:
        return open_output_dataset(store.location, path)
    except ResultsError:
        there = output_names(store.location, path.rpartition("/")[0])
        noun = "probing results" if kind == "probe" else f"{kind} analysis"
        hint = f"there are: {', '.join(there)}" if there else f"run xalign {kind.split('_')[0]} first"
        raise ResultsError(f"no {noun} named {name!r} in the store; {hint}") from None
