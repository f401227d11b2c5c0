"""The intrinsic probes a grid can run, as scikit-learn estimators, and how they are recorded.

A probe is an unfitted estimator object (:class:`~xalign.analysis.latent.LatentProbe`,
:class:`~xalign.analysis.gaussian.GaussianProbe`, or any class with the same methods): it
follows the scikit-learn contract (``get_params``, ``set_params``, ``sklearn.base.clone``), so
a grid clones it for every cell and records every hyperparameter with the results, and a
stored probing run can be rebuilt from its parameters.

Examples
--------
>>> from xalign.analysis.probes import describe_probe, make_probe
>>> probe = make_probe("latent", max_epochs=5000, patience=50)  # the reference's schedule
>>> describe_probe(probe)["probe_params"]["patience"]
50
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any, Protocol, Self

import numpy as np
from sklearn.base import clone

from xalign.analysis.gaussian import GaussianProbe
from xalign.analysis.latent import LatentProbe
from xalign.analysis.selection import FittedProbe

__all__ = ["PROBES", "Probe", "clone_probe", "describe_probe", "make_probe", "probe_name"]

PROBES: dict[str, type[Any]] = {"gaussian": GaussianProbe, "latent": LatentProbe}
"""The probes known by name (the CLI's ``--probe``); the first is the default: the Gaussian
probe, closed form, which needs no torch (the install without the ``torch`` extra probes)."""

NEEDS: dict[type[Any], str] = {LatentProbe: "torch"}
"""Probe class -> the optional package its fitting imports (checked before anything is written)."""


class Probe(FittedProbe, Protocol):
    """What the grid needs of a probe: a scikit-learn estimator that selection can score."""

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> Self: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...

    def set_params(self, **params: Any) -> Self: ...


def probe_name(probe: Any) -> str:
    """The name a probe is recorded under: its key in :data:`PROBES`, else its class path."""
    for name, cls in PROBES.items():
        if type(probe) is cls:
            return name
    return f"{type(probe).__module__}.{type(probe).__qualname__}"


def make_probe(probe: str | Any, **params: Any) -> Probe:
    """A probe from a name in :data:`PROBES` (with hyperparameters) or a probe object (cloned).

    Raises
    ------
    ValueError
        If the name is unknown, or a hyperparameter is not one of the probe's.
    """
    if isinstance(probe, str):
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}, got {probe!r}")
        probe = PROBES[probe]()
    for method in ("fit", "get_params", "set_params", "log_proba", "log_proba_candidates"):
        if not callable(getattr(probe, method, None)):
            raise ValueError(f"{type(probe).__name__} is not a probe: it has no {method}() method")
    made = clone_probe(probe)
    needed = NEEDS.get(type(made))
    if needed is not None and importlib.util.find_spec(needed) is None:
        message = f"the {probe_name(made)} probe needs {needed}, which is not installed"
        raise ModuleNotFoundError(message, name=needed)
    unknown = sorted(set(params) - set(made.get_params(deep=False)))
    if unknown:
        raise ValueError(
            f"{probe_name(made)} probe has no hyperparameter {', '.join(unknown)}; "
            f"it has {', '.join(sorted(made.get_params(deep=False)))}"
        )
    made.set_params(**params)
    check = getattr(made, "check_params", None)
    if callable(check):
        check()
    return made


def clone_probe(probe: Probe) -> Probe:
    """An unfitted copy with the same hyperparameters (``sklearn.base.clone``)."""
    copied: Probe = clone(probe)
    return copied


def describe_probe(probe: Probe) -> dict[str, Any]:
    """The probe's name and every hyperparameter, as stored in a results group's parameters."""
    return {"probe": probe_name(probe), "probe_params": _plain(probe.get_params(deep=False))}


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v.item() if isinstance(v, np.generic) else v for k, v in sorted(params.items())}
