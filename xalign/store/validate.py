"""Check a store against its schema, reading metadata and a few small coordinates only.

:func:`find_violations` returns every departure it finds, each with the path at fault, so
that ``xalign validate`` can list them all at once instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import zarr
import zarr.errors

from xalign import dims
from xalign.errors import StoreNotFoundError, StoreVersionError, Violation
from xalign.store.layout import ACTIVATIONS, CHUNK_ATTRS, SCHEMA_ATTR, n_chunks
from xalign.store.location import StoreLocation, describe_location, is_remote, resolve_location
from xalign.store.schema import ArraySpec, AttrSpec, GroupSpec, StoreSchema, load_schema

__all__ = ["dtype_name", "find_violations", "open_root", "schema_version"]

_ATTR_CHECKS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "list": list,
    "object": dict,
}


def open_root(location: StoreLocation, *, consolidated: bool = False) -> zarr.Group:
    """Open the root group of ``location`` read-only: its metadata as it is now, or with
    ``consolidated`` the snapshot extraction wrote when it completed the store, where there is one
    (one read instead of one per group and array; analyses' results written since are not in it).

    Raises
    ------
    StoreNotFoundError
        If there is no Zarr group there.
    """
    missing = (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError)
    try:
        location = resolve_location(location)  # a URL, with the configured storage options
        # Zarr v3 first (what xalign writes): a version 2 store's files are looked for only if
        # there is none, to refuse it by name (schema_version); that saves three reads per open.
        try:
            root = zarr.open_group(
                location, mode="r", zarr_format=3, use_consolidated=None if consolidated else False
            )
        except missing:
            root = zarr.open_group(location, mode="r", zarr_format=2, use_consolidated=False)
    except missing as exc:
        raise StoreNotFoundError(f"no xalign store at {describe_location(location)}") from exc
    except Exception as exc:
        if not is_remote(location):
            raise
        # A remote filesystem's own errors (botocore's, aiohttp's ...): name the URL.
        raise StoreNotFoundError(f"cannot reach {describe_location(location)}: {exc}") from exc
    return root


def schema_version(root: zarr.Group, location: StoreLocation) -> int:
    """The schema version a store says it follows.

    Raises
    ------
    StoreVersionError
        If the store names no xalign schema, or one this xalign does not know.
    """
    where = describe_location(location)
    if root.metadata.zarr_format != 3:
        raise StoreVersionError(
            f"{where} is a Zarr v{root.metadata.zarr_format} store; xalign stores are Zarr v3"
        )
    marker = root.attrs.get(SCHEMA_ATTR)
    version = marker.get("version") if isinstance(marker, Mapping) else None
    if not isinstance(version, int):
        raise StoreVersionError(f"{where} is a Zarr group but not an xalign store (no '{SCHEMA_ATTR}' attr)")
    load_schema(version)  # raises StoreVersionError, naming the versions known, if unknown
    return version


def dtype_name(dtype: Any) -> str:
    """The schema's name for a Zarr array's dtype (``str`` for every string type)."""
    np_dtype = np.dtype(dtype)
    return "str" if np_dtype.kind in "USOT" else np_dtype.name


def find_violations(
    location: StoreLocation, *, schema: StoreSchema | None = None, consolidated: bool = False
) -> list[Violation]:
    """Every way in which the store at ``location`` departs from its schema: as its metadata is
    now, or with ``consolidated`` as its consolidated snapshot says where it has one (what
    :func:`~xalign.open_store` checks: a handful of reads on object storage, where a walk of
    every group and array is hundreds; ``xalign validate`` walks).

    Raises
    ------
    StoreNotFoundError, StoreVersionError
        If there is no store, or it follows no schema this xalign knows.

    Examples
    --------
    >>> for violation in xalign.find_violations("runs/demo/toy.zarr"):
    ...     print(violation)
    """
    root = open_root(location, consolidated=consolidated)
    schema = schema or load_schema(schema_version(root, location))
    nodes = dict(root.members(max_depth=None))
    nodes[""] = root
    groups = {path: node for path, node in nodes.items() if isinstance(node, zarr.Group)}
    found: list[Violation] = []
    for spec in schema.groups:
        paths = [path for path in groups if spec.matches(path)]
        if spec.required and not paths:
            found.append(Violation(spec.path, "required group is missing"))
        for path in sorted(paths):
            found.extend(_group_violations(spec, path, groups[path]))
    found.extend(_cross_group_violations(groups))
    return found


def _join(group: str, name: str) -> str:
    return f"{group}/{name}" if group else name


def _group_violations(spec: GroupSpec, path: str, group: zarr.Group) -> Iterator[Violation]:
    attrs = group.attrs.asdict()
    for attr in spec.attrs:
        yield from _attr_violations(attr, path, attrs)
    arrays = {name: node for name, node in group.members() if isinstance(node, zarr.Array)}
    # xarray lists non-index coordinates in the 'coordinates' attr of the data arrays, or of
    # the group when it has no data arrays (CF convention).
    listed = [str(attrs.get("coordinates", ""))]
    listed += [str(node.attrs.get("coordinates", "")) for node in arrays.values()]
    coordinate_names = {name for names in listed for name in names.split()}
    sizes: dict[str, tuple[int, str]] = {}
    for array_spec in spec.arrays:
        for name in _array_names(array_spec, attrs):
            where = _join(path, name)
            if name not in arrays:
                if array_spec.required:
                    yield Violation(where, "required array is missing")
                continue
            yield from _array_violations(array_spec, where, name, arrays[name], coordinate_names, sizes)


def _attr_violations(attr: AttrSpec, path: str, attrs: Mapping[str, Any]) -> Iterator[Violation]:
    where = _join(path, f"@{attr.name}")
    if attr.name not in attrs:
        if attr.required:
            yield Violation(where, "required attr is missing")
        return
    value = attrs[attr.name]
    expected = _ATTR_CHECKS[attr.type]
    if not isinstance(value, expected) or (attr.type in ("int", "float") and isinstance(value, bool)):
        yield Violation(where, f"should be of type {attr.type}, is {type(value).__name__}")
        return
    if isinstance(value, dict):
        missing = [key for key in attr.keys if key not in value]
        if missing:
            yield Violation(where, f"lacks key(s) {', '.join(missing)}")


def _array_names(spec: ArraySpec, attrs: Mapping[str, Any]) -> list[str]:
    if spec.names_from is None:
        return [spec.name]
    names = attrs.get(spec.names_from, [])
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _array_violations(
    spec: ArraySpec,
    where: str,
    name: str,
    array: zarr.Array[Any],
    coordinate_names: set[str],
    sizes: dict[str, tuple[int, str]],
) -> Iterator[Violation]:
    dimension_names = tuple(getattr(array.metadata, "dimension_names", None) or ())
    if dimension_names != spec.dims:
        yield Violation(where, f"dimension_names should be {list(spec.dims)}, are {list(dimension_names)}")
        return
    actual = dtype_name(array.dtype)
    if actual not in spec.dtypes:
        yield Violation(where, f"dtype should be one of {', '.join(spec.dtypes)}, is {actual}")
    if spec.role == "coordinate" and name not in spec.dims and name not in coordinate_names:
        yield Violation(where, "should be a coordinate but no data array lists it in its 'coordinates' attr")
    for dim, size in zip(spec.dims, array.shape, strict=True):
        if dim in sizes and sizes[dim][0] != size:
            first_size, first = sizes[dim]
            yield Violation(where, f"dimension {dim!r} has size {size} here but {first_size} in {first}")
        sizes.setdefault(dim, (size, where))


def _cross_group_violations(groups: Mapping[str, zarr.Group]) -> Iterator[Violation]:
    """Checks that span groups: language groups repeat the root's steps and layers."""
    root = groups[""]
    for path, group in sorted(groups.items()):
        if not path.startswith("languages/") or path.count("/") != 1:
            continue
        language = path.split("/", 1)[1]
        if group.attrs.get("language", language) != language:
            yield Violation(
                _join(path, "@language"), f"is {group.attrs['language']!r} but the group is {language!r}"
            )
        for coord in (dims.STEP, dims.LAYER):
            if coord in root and coord in group:
                mine, theirs = group[coord], root[coord]
                if not (isinstance(mine, zarr.Array) and isinstance(theirs, zarr.Array)):
                    continue
                if mine.shape != theirs.shape or not np.array_equal(
                    np.asarray(mine[...]), np.asarray(theirs[...])
                ):
                    yield Violation(_join(path, coord), f"differs from the root's {coord} coordinate")
        yield from _chunk_violations(path, group)


def _chunk_violations(path: str, group: zarr.Group) -> Iterator[Violation]:
    """Activations are chunked as the group's chunk attrs say, with one done flag per chunk."""
    for name, (along, done_name) in ACTIVATIONS.items():
        array, done = group.get(name), group.get(done_name)
        chunk = group.attrs.get(CHUNK_ATTRS[along])
        if not isinstance(array, zarr.Array) or array.ndim != 4 or not isinstance(chunk, int):
            continue
        if chunk < 1:
            yield Violation(_join(path, f"@{CHUNK_ATTRS[along]}"), f"must be positive, is {chunk}")
            continue
        if array.chunks[2] != chunk:
            yield Violation(
                _join(path, name),
                f"chunks along {along} are {array.chunks[2]} but @{CHUNK_ATTRS[along]} is {chunk}",
            )
        if isinstance(done, zarr.Array) and done.ndim == 2:
            expected = n_chunks(array.shape[2], chunk)
            if done.shape[1] != expected:
                yield Violation(
                    _join(path, done_name),
                    f"has {done.shape[1]} flags but {array.shape[2]} items along {along} "
                    f"in chunks of {chunk} need {expected}",
                )
