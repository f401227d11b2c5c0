"""No import loops between xalign's modules, type-checking imports included.

Each module imports only what lies below it in the data flow (data -> extract -> store ->
analysis -> report -> cli); a loop means two modules each need the other, and that one of
them holds something in the wrong place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "xalign": ROOT / "xalign",
    "xalign.cli": ROOT / "cli",
    "xalign.store_schemas": ROOT / "store_schemas",
}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the xalign modules it imports (a name from a package counts as the package)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    if submodule in modules:
                        graph[name].add(submodule)
                    elif node.module in modules:
                        graph[name].add(node.module)
    return graph


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return loops


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "xalign.store.views" in graph["xalign.store.store"]
    assert "xalign.report.figures" in graph["xalign.report.page"]


def test_a_loop_is_found() -> None:
    assert import_loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["xalign.errors", "xalign.dims"])
def test_the_foundations_import_no_xalign_module(module: str) -> None:
    assert import_graph()[module] == set()


def test_no_import_loops() -> None:
    assert import_loops(import_graph()) == []


def test_every_public_function_and_store_method_shows_an_example() -> None:
    import inspect

    import xalign

    public = [getattr(xalign, name) for name in xalign.__all__]
    functions = [obj for obj in public if inspect.isfunction(obj)]
    methods = [
        member.fget if isinstance(member, property) else member
        for name, member in vars(xalign.Store).items()
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
    ]
    assert len(functions) >= 13
    assert len(methods) >= 15
    missing = [f.__qualname__ for f in functions + methods if ">>>" not in (inspect.getdoc(f) or "")]
    assert not missing, f"no example in the docs of {missing}"
