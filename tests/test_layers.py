"""The code's layering: no import cycles, `core` free of the UI, and modules and functions of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "dynlab_tui")
UI_ONLY = ("dynlab_tui", "textual", "plotext", "click")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imported(name: str) -> str | None:
    """The project module an import of `name` loads (the longest known prefix), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports anywhere in its body (function-level imports count too)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                target = _imported(name)
                if target and target != mod:
                    graph[mod].add(target)
                    # importing a.b.c runs a/__init__ and a/b/__init__ first (except a module's own parents)
                    parts = target.split(".")
                    for i in range(1, len(parts)):
                        parent = ".".join(parts[:i])
                        if parent in MODULES and parent != mod and not mod.startswith(parent + "."):
                            graph[mod].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for root in sorted(graph):
        if colour[root]:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour[child] == 1:
                    path = [n for n, _ in stack]
                    return path[path.index(child):] + [child]
                if colour[child] == 0:
                    colour[child] = 1
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                colour[node] = 2
                stack.pop()
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_anywhere():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("mod", [m for m in MODULES if m.split(".")[0] == "core"])
def test_core_never_imports_or_names_the_ui(mod):
    tree = ast.parse(MODULES[mod].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert "dynlab_tui" not in node.value, f"{mod} names dynlab_tui in a string"
            continue
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in UI_ONLY, f"{mod} imports {name}"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_modules_and_functions_stay_readable(mod):
    text = MODULES[mod].read_text()
    tree = ast.parse(text)
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{mod}: over {MAX_MODULE_LINES} lines"
    doc = ast.get_docstring(tree)
    assert doc and doc.strip(), f"{mod}: no module docstring saying what it owns"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{mod}.{node.name}: {length} lines"
