"""The probe quality gate: does a cell's probe carry information on unseen lemmas?

For each cell, the probe is fitted on train and its k neurons are chosen on dev; both are then
fixed. Under the null hypothesis that those neurons carry no information about the attribute
on the test words (unseen lemmas, with the lemma-disjoint split), the test labels are
exchangeable with respect to the probe's predictions, so permuting the labels against the
fixed predictions gives the null distribution of the held-out test MI exactly (up to Monte
Carlo error). The p-value is ``(1 + #{null >= observed}) / (1 + n_permutations)``, valid at
any number of permutations. It costs one gather per permutation: no refit, no reselection.

A grid probes many cells, so the gate corrects for multiplicity over the family of every
probed cell of a results group: Benjamini-Hochberg (false discovery rate, the default, via
``scipy.stats.false_discovery_control``) or Holm (family-wise error). A cell passes when its
adjusted p-value is at most ``alpha``.

Examples
--------
>>> results = store.results("probe")
>>> passed = gate(results, alpha=0.05, method="bh")           # (step, layer, language, attribute)
>>> passed.sum("language").sel(attribute="Number").to_pandas()   # cells that passed
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np
import scipy.stats
import xarray as xr

from xalign.analysis.metrics import entropy_bits
from xalign.analysis.stats import holm

__all__ = [
    "GATE_METHODS",
    "P_VALUE",
    "CorrectionMethod",
    "cell_seed",
    "describe_gate",
    "describe_gate_parameters",
    "gate",
    "permutation_test",
]

CorrectionMethod = Literal["bh", "holm"]
GATE_METHODS: tuple[CorrectionMethod, ...] = ("bh", "holm")
P_VALUE = "gate_p"
"""The results variable with each cell's permutation p-value (NaN: not probed or no gate)."""


def cell_seed(seed: int, step: int, layer: int, language: str, attribute: str) -> list[int]:
    """A seed for one cell's permutations: the same cell gets the same draws in any run."""
    return [seed, step, layer, zlib.crc32(language.encode()), zlib.crc32(attribute.encode())]


def permutation_test(
    log_proba: np.ndarray, y: np.ndarray, n_values: int, *, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """The normalised MI of fixed predictions with ``y``, and its permutation p-value and null mean.

    Parameters
    ----------
    log_proba
        (word, value) log-probabilities of the fixed probe on the test words.
    y
        (word,) the true value ids.

    Returns
    -------
    tuple
        (observed NMI, p-value, mean NMI under the null).
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    prior = entropy_bits(y, n_values)
    observed = _nmi(log_proba, y[None, :], prior)[0]
    shuffled = rng.permuted(np.broadcast_to(y, (n_permutations, len(y))), axis=1)
    null = _nmi(log_proba, shuffled, prior)
    p_value = (1.0 + float(np.sum(null >= observed - 1e-12))) / (1.0 + n_permutations)
    return float(observed), p_value, float(null.mean())


def _nmi(log_proba: np.ndarray, labels: np.ndarray, prior_bits: float) -> np.ndarray:
    """NMI of ``log_proba`` with each row of ``labels`` (rows: label vectors), as metrics computes it."""
    rows = np.arange(log_proba.shape[0])
    cross_entropy = -log_proba[rows[None, :], labels].mean(axis=1) / np.log(2)
    if prior_bits <= 0:
        return np.full(labels.shape[0], np.nan)
    result: np.ndarray = (prior_bits - cross_entropy) / prior_bits
    return result


def gate(results: xr.Dataset, *, alpha: float = 0.05, method: CorrectionMethod = "bh") -> xr.DataArray:
    """Which probed cells beat their permutation null after correction over every probed cell.

    Returns a boolean DataArray over the cells of ``results`` (False for cells not probed, and
    for results made without the gate); its attrs say the family size, alpha and method.

    Raises
    ------
    ValueError
        If ``method`` is unknown or ``alpha`` is not in (0, 1).
    """
    if method not in GATE_METHODS:
        raise ValueError(f"method must be one of {', '.join(GATE_METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if P_VALUE not in results:
        passed = xr.zeros_like(results["status"], dtype=bool)
        passed.attrs = {"alpha": alpha, "method": method, "family": 0, "available": False}
        return passed
    p = np.asarray(results[P_VALUE].values, dtype=np.float64)
    probed = np.isfinite(p)
    adjusted = np.full(p.shape, np.nan)
    if probed.any():
        if method == "bh":
            adjusted[probed] = scipy.stats.false_discovery_control(p[probed], method="bh")
        else:
            adjusted[probed] = holm(p[probed])
    passed = xr.DataArray(
        probed & (adjusted <= alpha),
        dims=results[P_VALUE].dims,
        coords={d: results[d] for d in results[P_VALUE].dims if d in results.coords},
        name="passed",
        attrs={"alpha": alpha, "method": method, "family": int(probed.sum()), "available": True},
    )
    return passed


def describe_gate(passed: xr.DataArray) -> str:
    """One line: how many cells passed, of how many, and how they were judged."""
    return describe_gate_parameters({**passed.attrs, "passed": int(passed.sum()), "applied": True})


def describe_gate_parameters(gate: dict[str, object]) -> str:
    """:func:`describe_gate` from the ``gate`` parameters an overlap records."""
    if not gate.get("available", True):
        return "probe quality gate: none (these results were made without one; probe them again)"
    method = {"bh": "Benjamini-Hochberg", "holm": "Holm"}[str(gate["method"])]
    used = "" if gate.get("applied", True) else "; not applied (--no-gate): every probed cell is used"
    return (
        f"probe quality gate: {gate['passed']} of {gate['family']} probed cells beat their permutation "
        f"null ({method}, alpha {gate['alpha']}){used}"
    )
