"""Typed access to the nodes of a Zarr group (``group[path]`` may be an array or a group)."""

from __future__ import annotations

from typing import Any

import zarr

__all__ = ["child_array", "child_group"]


def child_array(group: zarr.Group, path: str) -> zarr.Array[Any]:
    """The array at ``path`` below ``group``.

    Raises
    ------
    KeyError
        If there is nothing there; TypeError if it is a group.
    """
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise TypeError(f"{path} is a group, not an array")
    return node


def child_group(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` below ``group``."""
    node = group[path]
    if not isinstance(node, zarr.Group):
        raise TypeError(f"{path} is an array, not a group")
    return node
