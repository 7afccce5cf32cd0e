"""The house rules on imports (DESIGN.md, "Services"), read from the source with `ast`.

A service never imports another service, nor the runner that sits above them all (services/cli.py,
runner.py, allinone.py, workers.py, openapi.py); shared/ imports no service; services/ops.py, below
both, imports neither. Imports inside functions count too: they run all the same. And the forum's
modules import each other without a circle at module level.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("forum", "notify", "search")
# Above the services: each knows all three (openapi.py gathers their routers).
ABOVE_SERVICES = ("services.cli", "services.runner", "services.allinone", "services.workers", "services.openapi")
# Below the services and the runner alike: what a service's own commands need from the runner.
BELOW_SERVICES = ("services.ops",)


@dataclass(frozen=True)
class Import:
    """One imported module, where it is imported and whether at module level (not in a function)."""

    target: str
    line: int
    module_level: bool


# --- reading the source ---------------------------------------------------------------------------


def module_name(path: Path) -> str:
    """services/forum/topics/posts.py -> services.forum.topics.posts (a package: its folder's name)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    """Every module under services/ and shared/, by dotted name."""
    return {module_name(path): path for top in ("services", "shared") for path in sorted((ROOT / top).rglob("*.py"))}


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _base(module, is_package, node)
    for alias in node.names:
        # `from services import ops` imports the module services.ops; `from x.y import Name`, x.y.
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in known else base


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(node: ast.AST, module_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, module_level
        nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or _is_type_checking(child)
        yield from _import_nodes(child, module_level and not nested)


def imports_of(source: str, module: str, *, is_package: bool = False, known: Iterable[str] = ()) -> list[Import]:
    """Every import in a module's source, in functions too; `known` names the modules there are."""
    known_set = set(known)
    return [
        Import(target, node.lineno, module_level)
        for node, module_level in _import_nodes(ast.parse(source), True)
        for target in dict.fromkeys(_targets(node, module, is_package, known_set))
    ]


def all_imports() -> dict[str, list[Import]]:
    """Every module under services/ and shared/ with its imports."""
    modules = source_modules()
    return {
        name: imports_of(path.read_text(), name, is_package=path.name == "__init__.py", known=modules)
        for name, path in modules.items()
    }


# --- the rules ------------------------------------------------------------------------------------


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def service_of(name: str) -> str | None:
    """The service a module belongs to (services.forum.x -> forum), or None."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" and parts[1] in SERVICES else None


def why_forbidden(module: str, target: str) -> str | None:
    """Why `module` may not import `target`, or None when it may."""
    mine, theirs = service_of(module), service_of(target)
    if mine and theirs and mine != theirs:
        return "a service never imports another service (they meet through events, HTTP and sessions)"
    if (mine or module in BELOW_SERVICES) and any(_within(target, above) for above in ABOVE_SERVICES):
        return "the runner sits above the services: use services/ops.py"
    if module in BELOW_SERVICES and theirs:
        return "services/ops.py sits below the services and imports none of them"
    if _within(module, "shared") and _within(target, "services"):
        return "shared/ imports no service"
    return None


def violations(imports: dict[str, list[Import]]) -> list[str]:
    """Every broken rule, naming the module, the import and its line."""
    return [
        f"{module} imports {imp.target} (line {imp.line}): {reason}"
        for module, found in sorted(imports.items())
        for imp in found
        if (reason := why_forbidden(module, imp.target))
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph: one path per strongly connected group (Tarjan), closed on its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(_circle(graph, node, group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _circle(graph: dict[str, set[str]], start: str, group: set[str]) -> list[str]:
    """One path from `start` back to itself inside a strongly connected group (breadth first)."""
    paths = {nxt: [start, nxt] for nxt in sorted(graph.get(start, ())) if nxt in group}
    while start not in paths:
        paths = {
            nxt: [*path, nxt]
            for path in paths.values()
            for nxt in sorted(graph.get(path[-1], ()))
            if nxt in group and nxt not in path[1:]
        } or {start: [start, start]}
    return paths[start]


def module_graph(imports: dict[str, list[Import]], package: str) -> dict[str, set[str]]:
    """Who imports whom at module level, among the modules of one package."""
    return {
        module: {imp.target for imp in found if imp.module_level and _within(imp.target, package)} - {package}
        for module, found in imports.items()
        if _within(module, package)
    }


# --- the tests ------------------------------------------------------------------------------------


def test_services_and_shared_keep_the_import_rules():
    """No service imports another service or the runner, shared imports no service, ops imports neither."""
    assert violations(all_imports()) == []


@pytest.mark.parametrize(
    ("module", "source", "named"),
    [
        ("services.forum.commands", "from services.notify import live", "services.notify.live"),
        ("services.search.query", "def f():\n    import services.cli\n", "services.cli"),
        ("services.forum.commands", "from services import runner", "services.runner"),
        ("services.notify.app", "from services.allinone import AllInOne", "services.allinone"),
        ("services.forum.topics.posts", "from ...search import store", "services.search.store"),
        ("shared.events", "from services.forum.app import SCHEMA", "services.forum.app"),
        ("services.ops", "from services.forum import app", "services.forum.app"),
    ],
)
def test_a_forbidden_import_is_named(module, source, named):
    """The rules catch a forbidden import (in a function too, or relative) and name module, import and line."""
    known = {"services.runner", "services.forum.app", "services.notify.live", "services.search.store"}
    found = violations({module: imports_of(source, module, known=known)})
    assert len(found) == 1
    assert found[0].startswith(f"{module} imports {named} (line ")


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("services.forum.commands", "from services.ops import CommandError, servers"),
        ("services.cli", "from services.notify import app as notify"),
        ("services.forum.topics.posts", "from services.forum import access\nfrom shared import audience"),
        ("shared.sessions", "from shared import audience"),
    ],
)
def test_an_allowed_import_passes(module, source):
    """Within a service, to shared, to ops, and from the runner down: all allowed."""
    assert violations({module: imports_of(source, module)}) == []


def test_a_circle_is_found_and_named():
    """The circle finder names the modules of a circle in order, and passes a graph without one."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_forum_modules_import_each_other_without_circles():
    """No forum module is part of an import circle among forum modules at module level."""
    circles = cycles(module_graph(all_imports(), "services.forum"))
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)
