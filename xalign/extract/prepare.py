"""Lay out the store for an extraction so that a run killed in the middle is undone by the next.

Writing the template (a new store, new steps, new languages) takes many small writes; a kill
or a full disk in between would leave groups that look complete but are not. So a note beside
the store (``<store>.prepare.json``: a file beside a directory, an object beside a store in a
bucket) says what is being prepared, and is removed once it is; a rerun that finds it first
undoes the half-done preparation. Only the holder of the store's lock
(:mod:`xalign.extract.lock`) prepares, so the note has one writer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zarr

from xalign import dims
from xalign.extract.sink import ExtractionError
from xalign.extract.template import StorePlan, check_store, prepare_store
from xalign.store.layout import LANGUAGES_GROUP
from xalign.store.location import StoreLocation, describe_location, filesystem, is_url

__all__ = ["PreparationNote", "prepare"]

logger = logging.getLogger(__name__)


class PreparationNote:
    """``<store>.prepare.json`` beside the store at ``location`` (a path or URL), through fsspec."""

    def __init__(self, location: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> None:
        self.fs, self.store = filesystem(location, options)
        self.path = self.store + ".prepare.json"
        self.name = str(self.fs.unstrip_protocol(self.path)) if is_url(str(location)) else self.path

    @classmethod
    def beside(
        cls, location: StoreLocation, options: Mapping[str, Any] | None = None
    ) -> PreparationNote | None:
        """The note of a store at a path or URL; None for a store object (memory), which a
        killed process takes with it."""
        return cls(location, options) if isinstance(location, str | os.PathLike) else None

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def store_exists(self) -> bool:
        return bool(self.fs.exists(self.store))

    def read(self) -> Any:
        return json.loads(self.fs.cat_file(self.path).decode("utf-8"))

    def write(self, state: Mapping[str, Any]) -> None:
        """Write it whole: a rename on disk, one PUT (atomic) in a bucket."""
        data = json.dumps(dict(state)).encode("utf-8")
        from fsspec.implementations.local import LocalFileSystem

        if isinstance(self.fs, LocalFileSystem):
            temporary = Path(self.path + ".partial")
            try:
                temporary.write_bytes(data)
                temporary.replace(self.path)
            finally:
                temporary.unlink(missing_ok=True)
        else:
            self.fs.pipe_file(self.path, data)

    def remove(self) -> None:
        self.fs.rm_file(self.path)


def prepare(
    location: StoreLocation, note: PreparationNote | None, *, overwrite: bool, **arguments: Any
) -> StorePlan:
    """:func:`~xalign.extract.template.prepare_store` at ``location`` (what zarr opens), undone on
    the next run if this process dies in the middle (``note``: None for a memory store)."""
    if note is not None and note.exists():
        overwrite = _undo_preparation(location, note) or overwrite
    # A refused run writes nothing, not even the note: refusals are all found before it.
    check_store(
        location,
        overwrite=overwrite,
        **{name: arguments[name] for name in ("config", "checkpoints", "shape", "prov")},
    )
    if note is None:
        return prepare_store(location, overwrite=overwrite, **arguments)
    note.write(_store_state(location, note, overwrite))
    plan = prepare_store(location, overwrite=overwrite, **arguments)
    note.remove()
    return plan


def _store_state(location: StoreLocation, note: PreparationNote, overwrite: bool) -> dict[str, Any]:
    """What a preparation starts from: enough to undo it."""
    existed = note.store_exists()
    root = None if overwrite else _open_root(location)
    if root is None:
        return {"created": True, "existed": existed, "overwrite": overwrite}
    step = root.get(dims.STEP)
    languages = root.get(LANGUAGES_GROUP)
    return {
        "created": False,
        "steps": step.shape[0] if isinstance(step, zarr.Array) else None,
        "languages": sorted(languages.group_keys()) if isinstance(languages, zarr.Group) else [],
    }


def _open_root(location: StoreLocation) -> zarr.Group | None:
    try:
        return zarr.open_group(location, mode="r+", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None


def _undo_preparation(location: StoreLocation, note: PreparationNote) -> bool:
    """Undo what an interrupted preparation may have done; True if the store must be made anew."""
    where = describe_location(location)
    try:
        state = note.read()
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict):
        raise ExtractionError(
            f"{note.name} is damaged: it should say how far a previous extraction prepared {where}; "
            "delete it and rerun with --overwrite to start over"
        )
    root = _open_root(location)
    if state.get("created"):
        if state.get("existed") and not state.get("overwrite"):
            if root is not None:
                raise ExtractionError(
                    f"a previous extraction stopped while creating a store in {where}, a directory "
                    "that held other files before; it is left as it is: rerun with --overwrite to start over"
                )
            note.remove()  # it wrote nothing there
            return False
        logger.warning("a previous extraction stopped while creating %s: starting it over", where)
        note.remove()
        return True
    if root is not None:
        logger.warning("a previous extraction stopped while growing %s: undoing that first", where)
        _shrink_to(root, state.get("steps"), set(state.get("languages") or ()))
    note.remove()
    return False


def _shrink_to(root: zarr.Group, steps: int | None, languages: set[str]) -> None:
    """Drop language groups added since, and cut arrays along ``step`` back to ``steps``."""
    group = root.get(LANGUAGES_GROUP)
    if isinstance(group, zarr.Group):
        for language in sorted(set(group.group_keys()) - languages):
            del group[language]
    if steps is None:
        return
    for _, node in root.members(max_depth=None):
        names = tuple(getattr(node.metadata, "dimension_names", None) or ())
        if isinstance(node, zarr.Array) and names[:1] == (dims.STEP,) and node.shape[0] > steps:
            node.resize((steps, *node.shape[1:]))
