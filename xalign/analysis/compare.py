"""Several models side by side: one Dataset with a ``model`` dim, from each model's own store.

Each model (e.g. BLOOM 560m, 1b1, 1b7) has its own store, with its own neuron count and
layers; what is compared is what each store's analyses say at that model's headline layer
(fixed before looking: the middle stored layer, :func:`~xalign.analysis.sources.headline_layer`):

- ``mean_overlap`` over language pairs and attributes, as a ``multiple_of_chance`` (chance is
  k/d, which differs between models) and as a ``fraction_of_ceiling`` (of the chance-to-ceiling
  range, where the probing run measured the ceiling);
- the probe quality gate's counts, ``n_passed`` of ``n_probed`` cells;
- ``heldout_loss``, the mean over languages;
- the correlation of overlap with transfer (``r``, ``ci_low``, ``ci_high``, ``n_cells``: the
  stored correlation that uses independent transfer if there is one, else any stored one; its
  transfer is named in ``correlation_transfer``).

Steps are the union of the models' (NaN where a model has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.health import checkpoint_health
from xalign.analysis.overlap import summarize
from xalign.analysis.registry import open_stored
from xalign.analysis.sources import headline_layer
from xalign.store.layout import ANALYSES_GROUP
from xalign.store.outputs import ResultsError, output_names
from xalign.store.store import Store

__all__ = ["MODEL", "compare_stores", "model_labels"]

MODEL = "model"
"""The dim along which models are compared."""


def model_labels(stores: Sequence[Store]) -> list[str]:
    """A label per store: its model id (the provenance's), made unique with the store's name."""
    ids = [str(s.provenance.get("model_id") or "") for s in stores]
    names = [str(s.location).rstrip("/").rsplit("/", 1)[-1] for s in stores]
    labels = [i or n for i, n in zip(ids, names, strict=True)]
    if len(set(labels)) < len(labels):
        labels = [
            f"{label} ({name})" if labels.count(label) > 1 else label
            for label, name in zip(labels, names, strict=True)
        ]
    return labels


def _one(store: Store, overlap: str) -> xr.Dataset:
    pairs = open_stored(store, "overlap", overlap).compute()
    summary = summarize(pairs)
    layer, how = headline_layer([int(v) for v in summary[dims.LAYER].values])
    at = summary.sel({dims.LAYER: layer})
    chance = float(summary.attrs["chance"])
    out = xr.Dataset(
        {
            "mean_overlap": at["mean_overlap"],
            "multiple_of_chance": at["mean_overlap"] / chance,
            "n_passed": at["n_passed"] if "n_passed" in at else xr.full_like(at["mean_overlap"], np.nan),
            "n_probed": at["n_probed"] if "n_probed" in at else xr.full_like(at["mean_overlap"], np.nan),
        }
    )
    if "mean_ceiling" in at:
        out["fraction_of_ceiling"] = (at["mean_overlap"] - chance) / (at["mean_ceiling"] - chance)
    else:
        out["fraction_of_ceiling"] = xr.full_like(at["mean_overlap"], np.nan)
    health = checkpoint_health(store).compute()
    out["heldout_loss"] = health[dims.HELDOUT_LOSS].mean(dims.LANGUAGE, skipna=True)
    correlation = _correlation(store, layer)
    for name, value in correlation.items():
        out[name] = value
    out.attrs = {"layer": layer, "layer_choice": how, "chance": chance, "n_neurons": store.n_neurons}
    return out.drop_vars([c for c in out.coords if c != dims.STEP])


def _correlation(store: Store, layer: int) -> dict[str, Any]:
    """Pearson r, its interval and cell count at ``layer`` from the stored correlation that uses
    independent transfer (else any); NaN and '' without one."""
    names = output_names(store.location, f"{ANALYSES_GROUP}/correlation")
    found = [open_stored(store, "correlation", name) for name in names]
    found.sort(key=lambda c: "warning" in c.attrs)  # independent transfer first
    if not found:
        return {"r": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_cells": 0, "correlation_transfer": ""}
    chosen = found[0].compute()
    if layer not in chosen[dims.LAYER].values:
        raise ResultsError(f"the stored correlation has no layer {layer}")
    at = chosen.sel({dims.LAYER: layer, dims.STATISTIC: "pearson"})
    return {
        "r": float(at["r"]),
        "ci_low": float(at["ci_low"]),
        "ci_high": float(at["ci_high"]),
        "n_cells": int(chosen["n_cells"].sel({dims.LAYER: layer})),
        "correlation_transfer": str(chosen.attrs.get("parameters", {}).get("transfer", "")),
    }


def compare_stores(
    stores: Sequence[Store], *, labels: Sequence[str] | None = None, overlap: str = "probe"
) -> xr.Dataset:
    """Per model (dim ``model``) and step: the figures of the module docstring.

    Raises
    ------
    ResultsError
        If a store lacks the overlap analysis (run xalign probe and xalign overlap on it).
    """
    labels = list(labels) if labels is not None else model_labels(stores)
    if len(labels) != len(stores) or len(set(labels)) != len(labels):
        raise ValueError(f"need one distinct label per store, got {labels}")
    parts = []
    for label, store in zip(labels, stores, strict=True):
        try:
            parts.append(_one(store, overlap))
        except ResultsError as exc:
            raise ResultsError(f"{label}: {exc}") from None
    combined = xr.concat(
        parts, dim=xr.DataArray(labels, dims=MODEL, name=MODEL), join="outer", combine_attrs="drop"
    )
    for name in ("layer", "chance", "n_neurons"):
        combined[name] = (MODEL, [part.attrs[name] for part in parts])
    combined["layer_choice"] = (
        MODEL,
        np.asarray([part.attrs["layer_choice"] for part in parts], dtype=object),
    )
    combined.attrs = {"overlap": overlap}
    return combined
