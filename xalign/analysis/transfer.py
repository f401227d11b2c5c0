"""Zero-shot cross-lingual transfer of a linear classifier, measured from the store.

For every (step, layer) slab, a linear classifier of each attribute (and of the part of
speech, under the label coordinate :data:`~xalign.dims.UPOS`) is fitted on the train words of a
source language and scored on the test words of every target language, itself included: the
diagonal is the in-language accuracy. The classifier is a shrinkage linear discriminant
(:class:`ShrinkageLDA`), in closed form with numpy and scipy.

:func:`transfer_slab` is one Dask task; :func:`transfer_grid` lays the tasks out as a lazy
Dataset with dims (step, layer, attribute, language, language_other), where ``language`` is
the source and ``language_other`` the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import xarray as xr

from xalign import dims
from xalign.analysis.cells import CellFilters, kept_values_of, split_cells
from xalign.analysis.engine import SlabJob, lazy_result, select_values
from xalign.store.outputs import ResultsError
from xalign.store.store import Store

__all__ = [
    "PAIR_DIMS",
    "TRANSFER_VARIABLES",
    "ShrinkageLDA",
    "TransferParams",
    "linear_classifier",
    "pair_coords",
    "transfer_attributes",
    "transfer_grid",
    "transfer_job",
    "transfer_slab",
]

PAIR_DIMS = (dims.STEP, dims.LAYER, dims.ATTRIBUTE, dims.LANGUAGE, dims.LANGUAGE_OTHER)
"""Axis order of pairwise results (transfer here; overlap is stored in the same order)."""

TRANSFER_VARIABLES = ("accuracy", "baseline", "n_test")
"""The variables of a transfer result, each over (attribute, language, language_other)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferParams(CellFilters):
    """How transfer is measured; stored with the results.

    Each field's ``help`` is also the text of its command-line option (``xalign transfer``).
    """

    attributes: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "Attribute to transfer (repeatable; upos for the part of speech).",
            "option": "attribute",
        },
    )
    """Attributes to transfer (``"upos"`` for the part of speech); None: every attribute kept by
    the filters in at least one language, plus ``"upos"`` if it is kept somewhere."""
    shrinkage: float = field(
        default=0.1,
        metadata={
            "help": "Weight of the scaled identity in the LDA's shrunk covariance.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    """Weight of the scaled identity in the shrunk covariance, in [0, 1]."""

    def __post_init__(self) -> None:
        CellFilters.__post_init__(self)
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be between 0 and 1, got {self.shrinkage}")
        if self.attributes is not None:
            object.__setattr__(self, "attributes", tuple(self.attributes))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as plain JSON-able values (attributes as a list or None)."""
        out = asdict(self)
        if self.attributes is not None:
            out["attributes"] = list(self.attributes)
        return out


class ShrinkageLDA:
    """Linear discriminant analysis with a shrunk pooled covariance, in closed form.

    Features are standardised with the training mean and standard deviation (a constant
    feature is only centred). The pooled within-class covariance ``S`` of the standardised
    features is shrunk towards a scaled identity, ``(1 - shrinkage) S + shrinkage (tr S / d) I``,
    and a word goes to the class with the largest linear discriminant
    ``z Σ⁻¹ μ_c - μ_c Σ⁻¹ μ_c / 2 + log π_c``.

    Parameters
    ----------
    shrinkage
        Weight of the scaled identity, in [0, 1]; 1 gives a nearest-class-mean rule (with priors).
    """

    def __init__(self, shrinkage: float = 0.1) -> None:
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"shrinkage must be between 0 and 1, got {shrinkage}")
        self.shrinkage = float(shrinkage)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        """(d, n_classes) weights of the standardised features."""
        self.intercept_: np.ndarray | None = None
        """(n_classes,) offsets; -inf for a class without training words."""

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> ShrinkageLDA:
        """Fit on ``X`` (words, features) with class ids ``y`` in ``0 .. n_classes - 1``."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"X must be (words, features) and y (words,), got {X.shape} and {y.shape}")
        if len(y) == 0:
            raise ValueError("cannot fit a classifier on no words")
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
        d = X.shape[1]
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[~(scale > 0)] = 1.0
        Z = (X - mean) / scale
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        present = counts > 0
        means = np.zeros((n_classes, d))
        np.add.at(means, y, Z)
        means[present] /= counts[present, None]
        centred = Z - means[y]
        dof = max(len(y) - int(present.sum()), 1)
        covariance = centred.T @ centred / dof
        level = float(np.trace(covariance)) / d if d else 0.0
        if level > 0:
            covariance = (1.0 - self.shrinkage) * covariance + self.shrinkage * level * np.eye(d)
        else:  # every feature constant within classes: only the identity is left
            covariance = np.eye(d)
        coef = _solve(covariance, means.T)
        with np.errstate(divide="ignore"):
            log_prior = np.log(counts / counts.sum())
        intercept = -0.5 * np.einsum("kd,dk->k", means, coef) + log_prior
        intercept[~present] = -np.inf
        self.mean_, self.scale_, self.coef_, self.intercept_ = mean, scale, coef, intercept
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Linear discriminant of every class for every word, (words, n_classes)."""
        if self.mean_ is None or self.scale_ is None or self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("the classifier is not fitted")
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        scores: np.ndarray = Z @ self.coef_ + self.intercept_
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class id of every word of ``X`` (words, features)."""
        return np.asarray(np.argmax(self.decision_function(X), axis=1), dtype=np.int64)


def _solve(covariance: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``covariance⁻¹ rhs``; a least-squares solution where the covariance is singular."""
    try:
        solution = scipy.linalg.solve(covariance, rhs, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        solution = np.linalg.lstsq(covariance, rhs, rcond=None)[0]
    return np.asarray(solution, dtype=np.float64)


def linear_classifier(params: TransferParams) -> ShrinkageLDA:
    """The (unfitted) classifier that ``params`` asks for."""
    return ShrinkageLDA(shrinkage=params.shrinkage)


def _empty(n_attributes: int, n_languages: int) -> dict[str, np.ndarray]:
    shape = (n_attributes, n_languages, n_languages)
    return {
        "accuracy": np.full(shape, np.nan, dtype=np.float32),
        "baseline": np.full(shape, np.nan, dtype=np.float32),
        "n_test": np.zeros(shape, dtype=np.int64),
        "status": np.array("", dtype=object),
    }


def transfer_slab(
    store: Store,
    step: int,
    layer: int,
    languages: Sequence[str],
    attributes: Sequence[str],
    params: TransferParams,
) -> dict[str, np.ndarray]:
    """Transfer every attribute between every pair of ``languages`` on one slab; one Dask task.

    For each source language and attribute kept by the filters in the source, a classifier is
    fitted on the source's train words and scored on each target's test words whose value is
    one of the source's kept values (words without a vector, which no subword encodes, are left out).

    Returns
    -------
    dict
        ``accuracy`` (float32; NaN where the source does not keep the attribute or the target
        has no test word with one of its values), ``baseline`` (float32; accuracy of always
        predicting the source's most frequent train value) and ``n_test`` (int64; the target
        test words scored, 0 where NaN), each shaped (attribute, language, language_other), and
        ``status`` ('done').
    """
    out = _empty(len(attributes), len(languages))
    labels = {language: store.labels(language) for language in languages}
    kept = {
        language: kept_values_of(
            store, language, attributes, min_count=params.min_count, min_values=params.min_values
        )
        for language in languages
    }
    wanted = {a for per_language in kept.values() for a in per_language}
    out["status"] = np.array("done", dtype=object)
    if not wanted:
        return out
    hidden: dict[str, np.ndarray] = {}
    for language in languages:
        if any(a in labels[language] for a in wanted):
            # Read once, converted once.
            slab = store.slab(
                language, step=step, layer=layer, context=f"transfer at step {step}, layer {layer}"
            )
            hidden[language] = slab.astype(np.float64)
    tests = {language: _test_rows(hidden[language], labels[language]) for language in hidden}
    for i, attribute in enumerate(attributes):
        for s, source in enumerate(languages):
            if attribute not in kept[source]:
                continue
            values = kept[source][attribute]
            cell = split_cells(hidden[source], labels[source], {attribute: values})[attribute]
            X_train, y_train = cell.train
            classifier = linear_classifier(params).fit(X_train, y_train, n_classes=len(values))
            majority = int(np.argmax(np.bincount(y_train, minlength=len(values))))
            for t, target in enumerate(languages):
                if target not in tests or attribute not in labels[target]:
                    continue
                rows = tests[target]
                y_test = _codes(labels[target][attribute].values[rows], values)
                scored = y_test >= 0
                if not scored.any():
                    continue
                X_test, y_test = hidden[target][rows[scored]], y_test[scored]
                out["accuracy"][i, s, t] = np.mean(classifier.predict(X_test) == y_test)
                out["baseline"][i, s, t] = np.mean(y_test == majority)
                out["n_test"][i, s, t] = len(y_test)
    return out


def _test_rows(hidden: np.ndarray, labels: xr.Dataset) -> np.ndarray:
    """Indices of the test words of a language that have a vector."""
    finite = np.isfinite(hidden).all(axis=1)
    split = np.asarray(labels[dims.SPLIT].values, dtype=object)
    return np.flatnonzero(finite & (split == dims.SPLITS[2]))


def _codes(column: np.ndarray, values: Sequence[str]) -> np.ndarray:
    """Index into ``values`` of every label of ``column``; -1 for labels not among them."""
    column = np.asarray(column, dtype=object).astype(str)
    codes = np.full(len(column), -1, dtype=np.int64)
    for code, value in enumerate(values):
        codes[column == value] = code
    return codes


def transfer_attributes(store: Store, languages: Sequence[str], params: TransferParams) -> tuple[str, ...]:
    """The attributes a grid covers: ``params.attributes``, or every attribute kept (by the
    filters, from labels alone) in at least one of ``languages``, then ``"upos"`` if kept somewhere."""
    if params.attributes is not None:
        return tuple(params.attributes)
    found: dict[str, None] = {}
    upos = False
    for language in languages:
        candidates = [a for a in store.attributes(language) if a != dims.UPOS]
        kept = kept_values_of(
            store,
            language,
            [*candidates, dims.UPOS],
            min_count=params.min_count,
            min_values=params.min_values,
        )
        upos = upos or dims.UPOS in kept
        found.update(dict.fromkeys(a for a in kept if a != dims.UPOS))
    return (*found, dims.UPOS) if upos else tuple(found)


def transfer_job(
    store: Store,
    params: TransferParams,
    *,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
) -> SlabJob:
    """Transfer over every (step, layer) slab as a :class:`~xalign.analysis.engine.SlabJob`
    (:func:`transfer_slab` on each); ``steps`` and ``layers`` choose the slabs to run.

    The output spans the store's steps and layers, ``languages`` (default: the store's) as
    sources and targets, and :func:`transfer_attributes`; the attributes are recorded in the
    parameters.

    Raises
    ------
    ResultsError
        If no attribute passes the filters, or a chosen step or layer is not in the store.
    """
    languages = list(store.languages if languages is None else languages)
    unknown = sorted(set(languages) - set(store.languages))
    if unknown:
        raise ResultsError(f"language {unknown} not in the store; it has {', '.join(store.languages)}")
    attributes = list(transfer_attributes(store, languages, params))
    if not attributes:
        raise ResultsError("no attribute passes the filters in any language; lower --min-count")
    coords = pair_coords(store.steps.tolist(), store.layers.tolist(), attributes, languages)
    example = _empty(len(attributes), len(languages))
    slab_dims = (dims.STEP, dims.LAYER)
    chosen = {dims.STEP: steps, dims.LAYER: layers}
    return SlabJob(
        kind="transfer",
        location=store.location,
        parameters={**params.to_dict(), "attributes": attributes},
        slab_dims=slab_dims,
        coords=coords,
        selected={d: select_values(coords[d].tolist(), chosen[d]) for d in slab_dims},
        example=example,
        inner_dims={name: PAIR_DIMS[2 : 2 + value.ndim] for name, value in example.items()},
        function=transfer_slab,
        args=(languages, attributes, params),
        attrs={"measure": PROBE_TRANSFER},
    )


PROBE_TRANSFER = "probe transfer (same representations as the overlap; not an independent test)"
"""What the built-in transfer measures (recorded in its attrs)."""


def transfer_grid(
    store: Store,
    *,
    params: TransferParams,
    steps: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    languages: Sequence[str] | None = None,
) -> xr.Dataset:
    """Transfer accuracy of every (step, layer, attribute, source, target), as a lazy Dataset.

    One task per (step, layer) slab (:func:`transfer_slab`); nothing is read or computed until
    the caller computes the result. Data variables :data:`TRANSFER_VARIABLES` with dims (step,
    layer, attribute, language, language_other); ``language`` is the source (trained on its train
    split), ``language_other`` the target (tested on its test split).

    Examples
    --------
    >>> grid = transfer_grid(xalign.open_store("runs/toy.zarr"), params=TransferParams(), layers=[2])
    >>> grid["accuracy"].sel(attribute="Number", language="en").compute()
    """
    if (steps is not None and not list(steps)) or (layers is not None and not list(layers)):
        raise ValueError(f"a transfer grid needs at least one step and one layer, got {steps} and {layers}")
    return lazy_result(transfer_job(store, params, steps=steps, layers=layers, languages=languages))


def pair_coords(
    steps: Sequence[int], layers: Sequence[int], attributes: Sequence[str], languages: Sequence[str]
) -> dict[str, np.ndarray]:
    """The coordinates of a (step, layer, attribute, language, language_other) result."""
    return {
        dims.STEP: np.asarray(steps, dtype=np.int64),
        dims.LAYER: np.asarray(layers, dtype=np.int64),
        dims.ATTRIBUTE: np.asarray(attributes, dtype=object),
        dims.LANGUAGE: np.asarray(languages, dtype=object),
        dims.LANGUAGE_OTHER: np.asarray(languages, dtype=object),
    }
