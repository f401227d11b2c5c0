"""The versioned on-disk layout of an xalign store, as data.

Each ``v<N>.json`` here describes version N; :mod:`xalign.store.schema` loads them into
frozen dataclasses. A new version is a new file: old files never change, so that every
store ever written can still be read against the schema it was written with.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

__all__ = ["available_versions", "read_schema_document"]

_FILE = re.compile(r"^v(\d+)\.json$")


def available_versions() -> tuple[int, ...]:
    """Schema versions shipped with this xalign, oldest first."""
    found = (_FILE.match(entry.name) for entry in files(__name__).iterdir())
    return tuple(sorted(int(m.group(1)) for m in found if m))


def read_schema_document(version: int) -> dict[str, Any]:
    """The parsed JSON document of schema ``version``."""
    text = (files(__name__) / f"v{version}.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
