"""Does overlap go with transfer? Correlation over checkpoint × language cells.

As in the reference, a cell is one checkpoint and one target language: x is the overlap of the
source language's neuron sets with the target's (averaged over attributes), y is how well a
model trained on the source does on the target. Each layer gets its own correlation: Pearson
(the reference's statistic) and Spearman, with p-values and bootstrap confidence intervals,
and the number of cells used.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import xarray as xr

from xalign import dims
from xalign.analysis.stats import METHODS, correlate
from xalign.errors import XalignError

__all__ = ["CorrelationError", "correlate_cells", "transfer_cells"]

CLUSTER_INTERVAL = "two-way cluster bootstrap over steps and target languages (percentile)"
"""How a stored correlation's interval and p-value were made."""
OVERLAP = "overlap"
TRANSFER = "transfer"


class CorrelationError(XalignError, ValueError):
    """Overlap and transfer that cannot be paired (no shared language, attribute or step)."""


def transfer_cells(overlap: xr.Dataset, transfer: xr.DataArray, *, source: str) -> xr.Dataset:
    """Pair the overlap of ``source`` with each language and the transfer from ``source`` to it.

    Parameters
    ----------
    overlap
        An overlap analysis (dims step, layer, attribute, language, language_other).
    transfer
        Either probe transfer measured from the store (dims step, layer, attribute, language =
        source, language_other = target): cells then average overlap and transfer over the
        attributes both have; or fine-tuned transfer (dims step, language = source,
        language_other = target) or one task's imported scores (dims step, language = target):
        the overlap is averaged over attributes and the score is the same at every layer.

    Returns
    -------
    xr.Dataset
        Dims (step, layer, language_other): ``overlap`` and ``transfer``; NaN where a cell has
        either missing. Lazy if the inputs are.
    """
    languages = [str(v) for v in overlap[dims.LANGUAGE].values]
    if source not in languages:
        raise CorrelationError(f"source language {source!r} has no overlap results (there are {languages})")
    others = [lang for lang in languages if lang != source]
    pairs = overlap[OVERLAP].sel({dims.LANGUAGE: source}, drop=True).sel({dims.LANGUAGE_OTHER: others})
    if dims.ATTRIBUTE in transfer.dims:
        if source not in transfer[dims.LANGUAGE].values:
            raise CorrelationError(f"source language {source!r} has no transfer results")
        scores = transfer.sel({dims.LANGUAGE: source}, drop=True)
        pairs, scores = xr.align(pairs, scores, join="inner", exclude=[dims.STEP, dims.LAYER])
        if pairs.sizes[dims.ATTRIBUTE] == 0 or pairs.sizes[dims.LANGUAGE_OTHER] == 0:
            raise CorrelationError("overlap and transfer share no attribute and target language")
        both = pairs.notnull() & scores.notnull()
        x = pairs.where(both).mean(dims.ATTRIBUTE, skipna=True)
        y = scores.where(both).mean(dims.ATTRIBUTE, skipna=True)
    else:
        x = pairs.mean(dims.ATTRIBUTE, skipna=True)
        if dims.LANGUAGE_OTHER in transfer.dims:  # fine-tuned: (step, source, target)
            if source not in transfer[dims.LANGUAGE].values:
                raise CorrelationError(f"source language {source!r} has no transfer results")
            y = transfer.sel({dims.LANGUAGE: source}, drop=True)
        else:  # imported scores: (step, target)
            y = transfer.rename({dims.LANGUAGE: dims.LANGUAGE_OTHER})
        x, y = xr.align(x, y, join="inner", exclude=[dims.STEP, dims.LAYER])
        if x.sizes[dims.LANGUAGE_OTHER] == 0:
            raise CorrelationError("the transfer scores have no language besides the source")
        y = y.broadcast_like(x)
    cells = xr.Dataset({OVERLAP: x.reset_coords(drop=True), TRANSFER: y.reset_coords(drop=True)})
    return cells.transpose(dims.STEP, dims.LAYER, dims.LANGUAGE_OTHER)


def correlate_cells(
    cells: xr.Dataset,
    *,
    exclude_steps: Collection[int] = (),
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Pearson and Spearman correlation of ``overlap`` with ``transfer`` over each layer's cells.

    The interval and p-value come from the two-way cluster bootstrap over steps and target
    languages (:func:`~xalign.analysis.stats.correlate` with ``clusters``): the cells of one
    step share the source's neuron sets, and the cells of one target are alike across steps,
    so cells are not resampled as if independent.

    Returns
    -------
    xr.Dataset
        Dims (layer, statistic): ``r``, ``p_value``, ``ci_low``, ``ci_high``; ``n_cells`` (layer):
        the (step, language) cells with both values, flagged steps left out.
    """
    keep = ~np.isin(cells[dims.STEP].values, np.asarray(list(exclude_steps), dtype=np.int64))
    cells = cells.isel({dims.STEP: np.flatnonzero(keep)}).compute()
    layers = cells[dims.LAYER].values
    out = {
        name: np.full((len(layers), len(METHODS)), np.nan) for name in ("r", "p_value", "ci_low", "ci_high")
    }
    n_cells = np.zeros(len(layers), dtype=np.int64)
    for i, layer in enumerate(layers):
        x_grid = cells[OVERLAP].sel({dims.LAYER: layer}).transpose(dims.STEP, dims.LANGUAGE_OTHER)
        y_grid = cells[TRANSFER].sel({dims.LAYER: layer}).transpose(dims.STEP, dims.LANGUAGE_OTHER)
        x = np.asarray(x_grid.values, dtype=np.float64).ravel()
        y = np.asarray(y_grid.values, dtype=np.float64).ravel()
        step, target = np.meshgrid(*(np.arange(n) for n in x_grid.shape), indexing="ij")
        for j, method in enumerate(METHODS):
            result = correlate(
                x,
                y,
                method=method,
                n_boot=n_boot,
                confidence=confidence,
                seed=seed,
                clusters=(step.ravel(), target.ravel()),
            )
            out["r"][i, j], out["p_value"][i, j] = result.r, result.p_value
            out["ci_low"][i, j], out["ci_high"][i, j] = result.ci_low, result.ci_high
            n_cells[i] = result.n
    return xr.Dataset(
        {
            **{name: ((dims.LAYER, dims.STATISTIC), values) for name, values in out.items()},
            "n_cells": (dims.LAYER, n_cells),
        },
        coords={dims.LAYER: layers, dims.STATISTIC: np.asarray(METHODS, dtype=object)},
        attrs={"confidence": confidence, "interval": CLUSTER_INTERVAL},
    )
