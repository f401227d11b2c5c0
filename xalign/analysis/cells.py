"""From one (step, layer) slab of a language to the probing data of each attribute.

A cell is (step, layer, language, attribute). Its words are those carrying one of the
attribute's kept values (the reference's filters: at least ``min_count`` words in each of
train, dev and test; at least ``min_values`` such values) and whose vector exists (a word
that no subword encodes has none: it is counted as dropped).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from xalign import dims
from xalign.store.store import Store
from xalign.treebank.splits import count_values, filter_attributes

__all__ = ["CellData", "CellFilters", "kept_values", "kept_values_of", "split_cells"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CellFilters:
    """The reference's filters on attribute values; the parameters every analysis of cells shares.

    Each field's ``help`` is also the text of its command-line option.
    """

    min_count: int = field(
        default=20, metadata={"help": "Words a value needs in each of train, dev and test.", "min": 1}
    )
    min_values: int = field(
        default=2, metadata={"help": "Values an attribute needs after that filter.", "min": 2}
    )

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"min_count must be positive, got {self.min_count}")
        if self.min_values < 1:
            raise ValueError(f"min_values must be positive, got {self.min_values}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CellData:
    """The words of one cell, split, as value ids into ``values``."""

    values: tuple[str, ...]
    train: tuple[np.ndarray, np.ndarray]
    dev: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    dropped: int = 0
    """Words with a kept value but no vector (no subword encodes them), left out."""


def kept_values(
    labels: xr.Dataset, attributes: Sequence[str], *, min_count: int = 20, min_values: int = 2
) -> dict[str, tuple[str, ...]]:
    """Attribute -> its kept values, from a language's label coordinates alone.

    Only attributes that pass the filters appear. Reads labels, never activations.
    """
    usable = np.asarray(labels[dims.SUBWORDS].values) > 0
    splits = np.asarray(labels[dims.SPLIT].values, dtype=object)[usable]
    columns = {a: np.asarray(labels[a].values, dtype=object)[usable] for a in attributes if a in labels}
    examples = (({a: str(c[i]) for a, c in columns.items()}, str(splits[i])) for i in range(len(splits)))
    return filter_attributes(count_values(examples), min_count=min_count, min_values=min_values)


_kept: weakref.WeakKeyDictionary[Store, dict[tuple[Any, ...], dict[str, tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def kept_values_of(
    store: Store, language: str, attributes: Sequence[str], *, min_count: int = 20, min_values: int = 2
) -> dict[str, tuple[str, ...]]:
    """:func:`kept_values` of ``language``'s labels, computed once per opened store and filters."""
    labels = store.labels(language)
    wanted = tuple(a for a in attributes if a in labels)
    memo = _kept.setdefault(store, {})
    key = (language, wanted, min_count, min_values)
    if key not in memo:
        memo[key] = kept_values(labels, wanted, min_count=min_count, min_values=min_values)
    return memo[key]


def split_cells(
    hidden: np.ndarray, labels: xr.Dataset, kept: dict[str, tuple[str, ...]]
) -> dict[str, CellData]:
    """The train/dev/test words of each kept attribute, from one loaded slab (word, neuron)."""
    X = np.asarray(hidden, dtype=np.float64)
    finite = np.isfinite(X).all(axis=1)
    splits = np.asarray(labels[dims.SPLIT].values, dtype=object)
    cells = {}
    for attribute, values in kept.items():
        column = np.asarray(labels[attribute].values, dtype=object)
        code = {value: i for i, value in enumerate(values)}
        ids = np.array([code.get(str(v), -1) for v in column])
        parts = []
        for split in dims.SPLITS:
            rows = np.flatnonzero(finite & (ids >= 0) & (splits == split))
            parts.append((X[rows], ids[rows]))
        dropped = int(((ids >= 0) & ~finite & np.isin(splits, dims.SPLITS)).sum())
        cells[attribute] = CellData(
            values=values, train=parts[0], dev=parts[1], test=parts[2], dropped=dropped
        )
    return cells
