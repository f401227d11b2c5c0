"""The store schema as frozen dataclasses, loaded from the documents in ``store_schemas/``.

Each class has ``from_dict``/``to_dict``; each field is checked by one ``parse_<field>``
function, and :class:`StoreSchema` makes the one cross-field check (every array names
declared dimensions, every ``names_from`` names a list attr of its group).
Change a schema with :func:`dataclasses.replace`, never in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, cast

from xalign.errors import SchemaError, StoreVersionError
from xalign.store_schemas import available_versions, read_schema_document

__all__ = [
    "DTYPES",
    "ArraySpec",
    "AttrSpec",
    "GroupSpec",
    "StoreSchema",
    "latest_version",
    "load_schema",
]

AttrType = Literal["str", "int", "float", "bool", "list", "object"]
Role = Literal["coordinate", "data"]
ATTR_TYPES: tuple[AttrType, ...] = ("str", "int", "float", "bool", "list", "object")
ROLES: tuple[Role, ...] = ("coordinate", "data")
DTYPES = ("bool", "int32", "int64", "float16", "float32", "float64", "str")
"""The dtype names a schema may allow; ``str`` is any string type."""

_PLACEHOLDER = re.compile(r"^\{[a-z_]+\}$")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SchemaError(message)


def parse_name(value: Any) -> str:
    _require(isinstance(value, str) and value != "", f"name must be a non-empty string, got {value!r}")
    return cast(str, value)


def parse_description(value: Any) -> str:
    _require(isinstance(value, str), f"description must be a string, got {value!r}")
    return cast(str, value)


def parse_required(value: Any) -> bool:
    _require(isinstance(value, bool), f"required must be true or false, got {value!r}")
    return cast(bool, value)


def parse_attr_type(value: Any) -> AttrType:
    _require(value in ATTR_TYPES, f"attr type must be one of {ATTR_TYPES}, got {value!r}")
    return cast(AttrType, value)


def parse_role(value: Any) -> Role:
    _require(value in ROLES, f"role must be one of {ROLES}, got {value!r}")
    return cast(Role, value)


def parse_names(value: Any, what: str) -> tuple[str, ...]:
    _require(
        isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value),
        f"{what} must be a list of non-empty strings, got {value!r}",
    )
    _require(len(set(value)) == len(value), f"{what} has duplicates: {value!r}")
    return tuple(value)


def parse_dtypes(value: Any) -> tuple[str, ...]:
    dtypes = parse_names(value, "dtypes")
    _require(len(dtypes) > 0, "dtypes must allow at least one dtype")
    unknown = [d for d in dtypes if d not in DTYPES]
    _require(not unknown, f"unknown dtype(s) {unknown}; known: {DTYPES}")
    return dtypes


def parse_version(value: Any) -> int:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"version must be a positive integer, got {value!r}",
    )
    return cast(int, value)


def parse_path(value: Any) -> str:
    _require(isinstance(value, str), f"group path must be a string, got {value!r}")
    path = cast(str, value)
    _require(
        path == "" or all(part and not part.startswith("__") for part in path.split("/")),
        f"group path {path!r} has an empty or reserved part",
    )
    return path


def parse_dimensions(value: Any) -> dict[str, str]:
    _require(isinstance(value, Mapping), f"dimensions must be a mapping, got {value!r}")
    dims = dict(cast(Mapping[str, Any], value))
    for name, description in dims.items():
        parse_name(name)
        parse_description(description)
    return dims


def _check_keys(data: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str], what: str) -> None:
    _require(isinstance(data, Mapping), f"{what} must be a mapping, got {data!r}")
    extra = set(data) - set(allowed)
    _require(not extra, f"{what} has unknown field(s) {sorted(extra)}")
    missing = set(required) - set(data)
    _require(not missing, f"{what} lacks field(s) {sorted(missing)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class AttrSpec:
    """An attribute a group must carry."""

    name: str
    type: AttrType
    required: bool = True
    keys: tuple[str, ...] = ()
    """For ``object`` attrs: the keys it must have."""
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttrSpec:
        _check_keys(data, ("name", "type", "required", "keys", "description"), ("name", "type"), "attr")
        return cls(
            name=parse_name(data["name"]),
            type=parse_attr_type(data["type"]),
            required=parse_required(data.get("required", True)),
            keys=parse_names(data.get("keys", []), "keys"),
            description=parse_description(data.get("description", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "keys": list(self.keys),
            "description": self.description,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ArraySpec:
    """An array of a group: its dimension names, allowed dtypes and role."""

    name: str
    """The array's name, or a ``{placeholder}`` when ``names_from`` gives the names."""
    dims: tuple[str, ...]
    dtypes: tuple[str, ...]
    role: Role
    required: bool = True
    names_from: str | None = None
    """A list attr of the group naming one array of this spec per entry."""
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArraySpec:
        _check_keys(
            data,
            ("name", "dims", "dtypes", "role", "required", "names_from", "description"),
            ("name", "dims", "dtypes", "role"),
            "array",
        )
        names_from = data.get("names_from")
        return cls(
            name=parse_name(data["name"]),
            dims=parse_names(data["dims"], "dims"),
            dtypes=parse_dtypes(data["dtypes"]),
            role=parse_role(data["role"]),
            required=parse_required(data.get("required", True)),
            names_from=None if names_from is None else parse_name(names_from),
            description=parse_description(data.get("description", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "dims": list(self.dims),
            "dtypes": list(self.dtypes),
            "role": self.role,
            "required": self.required,
            "description": self.description,
        }
        if self.names_from is not None:
            out["names_from"] = self.names_from
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupSpec:
    """A group of the store; ``{placeholder}`` parts of its path match any node name."""

    path: str
    required: bool = True
    description: str = ""
    attrs: tuple[AttrSpec, ...] = ()
    arrays: tuple[ArraySpec, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupSpec:
        _check_keys(data, ("path", "required", "description", "attrs", "arrays"), ("path",), "group")
        return cls(
            path=parse_path(data["path"]),
            required=parse_required(data.get("required", True)),
            description=parse_description(data.get("description", "")),
            attrs=tuple(AttrSpec.from_dict(a) for a in data.get("attrs", [])),
            arrays=tuple(ArraySpec.from_dict(a) for a in data.get("arrays", [])),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "required": self.required,
            "description": self.description,
            "attrs": [a.to_dict() for a in self.attrs],
            "arrays": [a.to_dict() for a in self.arrays],
        }

    @property
    def is_pattern(self) -> bool:
        """Whether the path has a ``{placeholder}`` part (one group per matching node)."""
        return any(_PLACEHOLDER.match(part) for part in self.path.split("/"))

    def matches(self, path: str) -> bool:
        """Whether the concrete group ``path`` is an instance of this spec."""
        mine = self.path.split("/") if self.path else []
        theirs = path.split("/") if path else []
        return len(mine) == len(theirs) and all(
            m == t or bool(_PLACEHOLDER.match(m)) for m, t in zip(mine, theirs, strict=True)
        )

    def array(self, name: str) -> ArraySpec:
        """The spec of the fixed-name array ``name``."""
        for spec in self.arrays:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreSchema:
    """One version of the store layout."""

    name: str
    version: int
    description: str = ""
    dimensions: Mapping[str, str] = field(default_factory=dict)
    groups: tuple[GroupSpec, ...] = ()

    def __post_init__(self) -> None:
        paths = [g.path for g in self.groups]
        _require(len(set(paths)) == len(paths), f"group paths repeat: {paths}")
        for group in self.groups:
            attr_types = {a.name: a.type for a in group.attrs}
            names = [a.name for a in group.arrays]
            _require(len(set(names)) == len(names), f"group {group.path!r}: array names repeat")
            for array in group.arrays:
                where = f"group {group.path!r} array {array.name!r}"
                unknown = [d for d in array.dims if d not in self.dimensions]
                _require(not unknown, f"{where}: undeclared dimension(s) {unknown}")
                if array.names_from is not None:
                    _require(
                        attr_types.get(array.names_from) == "list",
                        f"{where}: names_from {array.names_from!r} is not a list attr of the group",
                    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreSchema:
        _check_keys(
            data, ("name", "version", "description", "dimensions", "groups"), ("name", "version"), "schema"
        )
        return cls(
            name=parse_name(data["name"]),
            version=parse_version(data["version"]),
            description=parse_description(data.get("description", "")),
            dimensions=parse_dimensions(data.get("dimensions", {})),
            groups=tuple(GroupSpec.from_dict(g) for g in data.get("groups", [])),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "dimensions": dict(self.dimensions),
            "groups": [g.to_dict() for g in self.groups],
        }

    def group(self, path: str) -> GroupSpec:
        """The spec that the concrete group ``path`` is an instance of."""
        for spec in self.groups:
            if spec.matches(path):
                return spec
        raise KeyError(path)


def latest_version() -> int:
    """The newest schema version this xalign can read and write.

    Examples
    --------
    >>> xalign.latest_version()
    2
    """
    return max(available_versions())


@cache
def load_schema(version: int | None = None) -> StoreSchema:
    """Load schema ``version`` (default: the latest) from ``store_schemas/``.

    Raises
    ------
    StoreVersionError
        If this xalign does not ship that version.

    Examples
    --------
    >>> [group.path for group in xalign.load_schema().groups][:3]
    """
    known = available_versions()
    version = latest_version() if version is None else version
    if version not in known:
        newest = max(known)
        hint = " Upgrade xalign to read it." if version > newest else ""
        raise StoreVersionError(
            f"store schema version {version} is unknown to xalign (it knows "
            f"{', '.join(map(str, known))}).{hint}"
        )
    return StoreSchema.from_dict(read_schema_document(version))
