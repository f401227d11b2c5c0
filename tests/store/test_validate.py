"""Validation finds every kind of schema violation, each with the path at fault."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from xalign.errors import StoreNotFoundError, StoreVersionError
from xalign.store import find_violations
from xalign.store.location import StoreLocation
from xalign.testing import assert_valid_store


def _group(location: StoreLocation) -> zarr.Group:
    return zarr.open_group(location, mode="r+", use_consolidated=False)


def _replace(group: zarr.Group, name: str, values: np.ndarray, dims: tuple[str, ...]) -> None:
    coordinates = group[name].attrs.asdict() if name in group else {}
    del group[name]
    dtype = str if values.dtype == object else values.dtype
    array = group.create_array(name, shape=values.shape, dtype=dtype, dimension_names=dims)
    array[...] = values
    array.attrs.update(coordinates)


def test_synthetic_store_is_valid(synthetic_store: StoreLocation) -> None:
    assert find_violations(synthetic_store) == []
    assert_valid_store(synthetic_store)


TAMPERS: dict[str, tuple[Callable[[zarr.Group], None], str, str]] = {
    "missing group": (
        lambda g: g.__delitem__("languages"),
        "languages/{language}",
        "required group is missing",
    ),
    "missing root attr": (
        lambda g: g.attrs.__delitem__("provenance"),
        "@provenance",
        "required attr is missing",
    ),
    "object attr lacks key": (
        lambda g: g.attrs.update(provenance={"model_id": "m"}),
        "@provenance",
        "lacks key(s) tokenizer",
    ),
    "attr of wrong type": (
        lambda g: g["languages/en"].attrs.update(chunk_words="256"),
        "languages/en/@chunk_words",
        "should be of type int, is str",
    ),
    "missing array": (
        lambda g: g["languages/en"].__delitem__("lemma"),
        "languages/en/lemma",
        "required array is missing",
    ),
    "missing attribute label": (
        lambda g: g["languages/fr"].attrs.update(attributes=["Number", "Gender", "Tense"]),
        "languages/fr/Tense",
        "required array is missing",
    ),
    "wrong dimension names": (
        lambda g: _replace(g["languages/en"], "upos", np.array(["NOUN"] * 600, dtype=object), ("token",)),
        "languages/en/upos",
        "dimension_names should be ['word'], are ['token']",
    ),
    "wrong dtype": (
        lambda g: _replace(g["languages/en"], "split", np.zeros(600, dtype=np.int8), ("word",)),
        "languages/en/split",
        "dtype should be one of str, is int8",
    ),
    "inconsistent dimension size": (
        lambda g: _replace(g["languages/es"], "form", np.array(["x"] * 599, dtype=object), ("word",)),
        "languages/es/form",
        "dimension 'word' has size 599",
    ),
    "coordinate not listed": (
        lambda g: (
            g["languages/en/hidden"].attrs.update(coordinates="form")
            or g["languages/en/done"].attrs.update(coordinates="")
        ),
        "languages/en/lemma",
        "should be a coordinate",
    ),
    "steps differ from the root": (
        lambda g: _replace(g["languages/fr"], "step", np.array([0, 1000, 3000]), ("step",)),
        "languages/fr/step",
        "differs from the root's step",
    ),
    "language attr disagrees": (
        lambda g: g["languages/fr"].attrs.update(language="es"),
        "languages/fr/@language",
        "is 'es' but the group is 'fr'",
    ),
    "chunking disagrees": (
        lambda g: g["languages/en"].attrs.update(chunk_words=100),
        "languages/en/hidden",
        "chunks along word are 256 but @chunk_words is 100",
    ),
    "done has wrong shape": (
        lambda g: _replace(g["languages/en"], "done", np.ones((3, 5), dtype=bool), ("step", "word_chunk")),
        "languages/en/done",
        "has 5 flags but 600 items along word in chunks of 256 need 3",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_each_violation_is_found_with_its_path(synthetic_store: StoreLocation, case: str) -> None:
    tamper, path, message = TAMPERS[case]
    tamper(_group(synthetic_store))
    violations = find_violations(synthetic_store)
    assert any(v.path == path and message in v.message for v in violations), violations


def test_all_violations_are_reported_at_once(synthetic_store: StoreLocation) -> None:
    group = _group(synthetic_store)
    del group["languages/en/lemma"]
    del group["languages/fr/upos"]
    group.attrs["provenance"] = {}
    paths = {v.path for v in find_violations(synthetic_store)}
    assert {"languages/en/lemma", "languages/fr/upos", "@provenance"} <= paths


def test_a_plain_zarr_group_is_not_an_xalign_store(tmp_path: Path) -> None:
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreVersionError, match="not an xalign store"):
        find_violations(str(tmp_path / "plain.zarr"))


def test_a_newer_store_is_refused_with_advice(synthetic_store: StoreLocation) -> None:
    _group(synthetic_store).attrs["xalign_schema"] = {"name": "xalign-activation-store", "version": 7}
    with pytest.raises(StoreVersionError, match=r"version 7 is unknown.*Upgrade xalign"):
        find_violations(synthetic_store)


def test_a_zarr_v2_store_is_refused(tmp_path: Path) -> None:
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    with pytest.raises(StoreVersionError, match="Zarr v2"):
        find_violations(str(tmp_path / "v2.zarr"))


def test_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="no xalign store at"):
        find_violations(str(tmp_path / "absent.zarr"))
