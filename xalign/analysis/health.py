"""Checkpoint health: checkpoints whose weights duplicate another's, or whose loss is anomalous.

Published intermediate checkpoints are not always what their names say: BLOOM-560m's step
500k has the weights of step 10k, and its step 600k has an English perplexity near 320,000.
Findings that sit on such checkpoints are artefacts. Every step gets a verdict here, from the
store's weight fingerprints and held-out losses alone (no activations are read), and every
table, plot and analysis can mark or exclude the flagged steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from xalign import dims
from xalign.store.store import Store

__all__ = ["DEFAULT_LOSS_TOLERANCE", "checkpoint_health", "flagged_steps", "health_from"]

DEFAULT_LOSS_TOLERANCE = 2.0
"""Nats by which a checkpoint's held-out loss may exceed the worse of its neighbours' before it is
flagged: a perplexity more than e² ≈ 7.4 times theirs. Training lowers the loss, so the earlier
neighbour is normally the worse one and an ordinary checkpoint is below it."""


def checkpoint_health(store: Store, *, loss_tolerance: float = DEFAULT_LOSS_TOLERANCE) -> xr.Dataset:
    """The health of every checkpoint of ``store`` (see :func:`health_from`)."""
    losses = [
        store.dataset(language)[dims.HELDOUT_LOSS].astype(np.float64).expand_dims({dims.LANGUAGE: [language]})
        for language in store.languages
    ]
    heldout = (
        xr.concat(losses, dim=dims.LANGUAGE, coords="minimal", compat="override").transpose(
            dims.STEP, dims.LANGUAGE
        )
        if losses
        else xr.DataArray(
            np.empty((len(store.steps), 0)),
            dims=(dims.STEP, dims.LANGUAGE),
            coords={dims.STEP: store.steps, dims.LANGUAGE: np.array([], dtype=object)},
        )
    )
    heldout = heldout.reset_coords(drop=True)
    return health_from(store.fingerprints, heldout, loss_tolerance=loss_tolerance)


def health_from(
    fingerprints: Mapping[int, str],
    heldout_loss: xr.DataArray,
    *,
    loss_tolerance: float = DEFAULT_LOSS_TOLERANCE,
) -> xr.Dataset:
    """Flag duplicate and anomalous checkpoints.

    Parameters
    ----------
    fingerprints
        Step -> hash of its weights ('' where unknown: never a duplicate).
    heldout_loss
        Held-out next-token loss (nats), dims (step, language); NaN where not measured.
    loss_tolerance
        A checkpoint is anomalous when its loss, averaged over languages, exceeds that of the
        worse of its neighbours in step order (the one before and, where there is one, the one
        after) by more than this many nats. The first checkpoint is not judged: training lowers
        the loss, so its only neighbour is below it by any amount.

    Returns
    -------
    xr.Dataset
        Over ``step`` (in the order of ``heldout_loss``): ``heldout_loss`` (step, language),
        ``duplicate_of`` (the earliest step with the same weights, -1 if none),
        ``loss_excess`` (nats above the worse neighbour; NaN where unmeasured),
        ``flagged`` and ``reason`` ('' for a healthy checkpoint).
    """
    steps = np.asarray(heldout_loss[dims.STEP].values, dtype=np.int64)
    duplicate_of = _duplicates(steps, fingerprints)
    mean_loss = np.asarray(heldout_loss.mean(dims.LANGUAGE, skipna=True).values, dtype=np.float64)
    excess = _loss_excess(steps, mean_loss)
    anomalous = np.nan_to_num(excess, nan=-np.inf) > loss_tolerance
    reasons = []
    for i in range(len(steps)):
        why = []
        if duplicate_of[i] >= 0:
            why.append(f"weights duplicate step {duplicate_of[i]}")
        if anomalous[i]:
            why.append(f"held-out loss {mean_loss[i]:.2f} nats, {excess[i]:.2f} above its neighbours")
        reasons.append("; ".join(why))
    return xr.Dataset(
        {
            dims.HELDOUT_LOSS: heldout_loss,
            "duplicate_of": (dims.STEP, duplicate_of),
            "loss_excess": (dims.STEP, excess),
            "flagged": (dims.STEP, (duplicate_of >= 0) | anomalous),
            "reason": (dims.STEP, np.asarray(reasons, dtype=object)),
        },
        coords={dims.STEP: steps},
        attrs={"loss_tolerance": loss_tolerance},
    )


def flagged_steps(health: xr.Dataset) -> list[int]:
    """The flagged steps of a :func:`health_from` result, in step order."""
    return sorted(int(s) for s in health[dims.STEP].values[np.asarray(health["flagged"].values, dtype=bool)])


def _duplicates(steps: Sequence[int] | np.ndarray, fingerprints: Mapping[int, str]) -> np.ndarray:
    """For each step, the earliest other step with the same fingerprint, or -1."""
    first: dict[str, int] = {}
    for step in sorted(int(s) for s in steps):
        fingerprint = fingerprints.get(step, "")
        if fingerprint:
            first.setdefault(fingerprint, step)
    out = np.full(len(steps), -1, dtype=np.int64)
    for i, step in enumerate(steps):
        earliest = first.get(fingerprints.get(int(step), ""), int(step))
        if earliest != int(step):
            out[i] = earliest
    return out


def _loss_excess(steps: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Loss minus the larger of its step-order neighbours' (measured ones only); NaN for the first."""
    order = np.argsort(steps, kind="stable")
    sorted_loss = loss[order]
    measured = np.flatnonzero(np.isfinite(sorted_loss))
    excess_sorted = np.full(len(steps), np.nan)
    # The first measured checkpoint has no earlier one; its later neighbour is lower by training
    # itself, by any amount, so it is not judged.
    for j, position in enumerate(measured[1:], start=1):
        neighbours = [measured[j - 1], *([measured[j + 1]] if j + 1 < len(measured) else [])]
        excess_sorted[position] = sorted_loss[position] - max(sorted_loss[n] for n in neighbours)
    excess = np.empty_like(excess_sorted)
    excess[order] = excess_sorted
    return excess
