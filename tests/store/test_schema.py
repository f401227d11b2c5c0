"""The schema documents load into dataclasses that round-trip exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xalign import dims
from xalign.errors import SchemaError, StoreVersionError
from xalign.store.schema import DTYPES, ArraySpec, AttrSpec, GroupSpec, StoreSchema, load_schema
from xalign.store_schemas import available_versions, read_schema_document

names = st.from_regex(r"[a-z][a-z_]{0,7}", fullmatch=True)
descriptions = st.text(max_size=20)
DIMENSIONS = ("step", "layer", "word", "neuron")

attr_specs = st.builds(
    AttrSpec,
    name=names,
    type=st.sampled_from(["str", "int", "float", "bool", "list", "object"]),
    required=st.booleans(),
    keys=st.lists(names, unique=True, max_size=3).map(tuple),
    description=descriptions,
)
array_specs = st.builds(
    ArraySpec,
    name=names,
    dims=st.lists(st.sampled_from(DIMENSIONS), unique=True, min_size=1, max_size=4).map(tuple),
    dtypes=st.lists(st.sampled_from(DTYPES), unique=True, min_size=1).map(tuple),
    role=st.sampled_from(["coordinate", "data"]),
    required=st.booleans(),
    description=descriptions,
)


@st.composite
def group_specs(draw: st.DrawFn) -> GroupSpec:
    attrs = draw(st.lists(attr_specs, unique_by=lambda a: a.name, max_size=4))
    arrays = draw(st.lists(array_specs, unique_by=lambda a: a.name, max_size=5))
    list_attrs = [a.name for a in attrs if a.type == "list"]
    if list_attrs and arrays and draw(st.booleans()):
        arrays[0] = replace(arrays[0], names_from=list_attrs[0])
    path = draw(st.lists(st.one_of(names, names.map(lambda n: "{" + n + "}")), max_size=3))
    return GroupSpec(
        path="/".join(path),
        required=draw(st.booleans()),
        description=draw(descriptions),
        attrs=tuple(attrs),
        arrays=tuple(arrays),
    )


schemas = st.builds(
    StoreSchema,
    name=names,
    version=st.integers(1, 1000),
    description=descriptions,
    dimensions=st.just({d: f"the {d}" for d in DIMENSIONS}),
    groups=st.lists(group_specs(), unique_by=lambda g: g.path, max_size=4).map(tuple),
)


@given(schemas)
def test_round_trip_through_dict_and_json(schema: StoreSchema) -> None:
    assert StoreSchema.from_dict(schema.to_dict()) == schema
    assert StoreSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema


@pytest.mark.parametrize("version", available_versions())
def test_shipped_documents_load_and_round_trip(version: int) -> None:
    schema = load_schema(version)
    assert schema.version == version
    assert StoreSchema.from_dict(schema.to_dict()) == schema
    assert StoreSchema.from_dict(read_schema_document(version)) == schema


def test_latest_schema_uses_the_declared_dimension_names() -> None:
    declared = {value for name, value in vars(dims).items() if name.isupper() and isinstance(value, str)}
    for group in load_schema().groups:
        for array in group.arrays:
            assert set(array.dims) <= declared, (group.path, array.name)


def test_group_patterns_match_concrete_paths() -> None:
    language = load_schema().group("languages/fr")
    assert language.path == "languages/{language}"
    assert language.is_pattern
    assert not language.matches("languages/fr/extra")
    assert load_schema().group("").path == ""


def test_unknown_version_is_refused_with_the_known_ones() -> None:
    with pytest.raises(StoreVersionError, match=r"version 99 is unknown.*Upgrade xalign"):
        load_schema(99)


def _schema_dict() -> dict[str, Any]:
    return load_schema().to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=0), "version must be a positive integer"),
        (lambda d: d["groups"][0]["arrays"][0].update(dims=["nonsense"]), "undeclared dimension"),
        (lambda d: d["groups"][0]["arrays"][0].update(dtypes=["complex128"]), "unknown dtype"),
        (lambda d: d["groups"][0]["attrs"][0].update(type="set"), "attr type must be"),
        (lambda d: d["groups"][1]["arrays"][0].update(names_from="language"), "is not a list attr"),
        (lambda d: d["groups"].append(d["groups"][0]), "group paths repeat"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d["groups"][0]["arrays"][0].pop("role"), "lacks field"),
    ],
)
def test_malformed_documents_are_refused(mutate: Any, message: str) -> None:
    document = _schema_dict()
    mutate(document)
    with pytest.raises(SchemaError, match=message):
        StoreSchema.from_dict(document)


def test_a_version_1_store_still_opens_and_reads_its_truncation_count(tmp_path: Path) -> None:
    """Version 1 stores cut long sentences; version 2 runs them in windows. Old stores stay readable."""
    import zarr
    from click.testing import CliRunner

    from xalign import open_store
    from xalign.cli.main import cli
    from xalign.store.layout import LanguageMeta
    from xalign.store.write import consolidate
    from xalign.testing import SyntheticSpec, write_synthetic_store

    location = str(tmp_path / "old.zarr")
    write_synthetic_store(location, SyntheticSpec(languages=("en",)))
    root = zarr.open_group(location, mode="r+", use_consolidated=False)
    root.attrs["xalign_schema"] = {**root.attrs["xalign_schema"], "version": 1}
    group = root["languages/en"]
    attrs = group.attrs.asdict()
    for name in ("windowed_sentences", "unencoded_words"):
        attrs.pop(name, None)
    group.attrs.clear()
    group.attrs.update({**attrs, "truncated_sentences": 2, "truncated_words": 7})
    consolidate(location)
    store = open_store(location)
    assert store.schema_version == 1
    assert LanguageMeta.from_attrs(store.dataset("en").attrs).unencoded_words == 7
    info = CliRunner().invoke(cli, ["info", location])
    assert info.exit_code == 0, info.output
    assert "schema    v1" in info.output
