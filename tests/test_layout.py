"""The house: the library's folders are layers, each importing only from the layers below it, and no module
imports itself round a circle. Read from the source (every import, lazy ones inside functions included), so a
new circle or an arrow that runs back up fails here before it confuses a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "arm_a3c"

# Each part of the library, with the parts it may import. Lower layers know nothing of the ones above them:
# the robot nothing of tasks, the environment nothing of learning, the algorithm nothing of where its workers
# run or of pygame.
MAY_IMPORT = {
    "errors": set(),
    "limits": set(),
    "files": {"errors"},
    "sim": {"errors", "files"},
    "tasks": {"errors", "files", "limits", "sim"},
    "envs": {"errors", "files", "limits", "sim", "tasks"},
    "a3c": {"errors", "files", "limits", "sim", "tasks", "envs"},
    "backends": {"errors", "files", "limits", "sim", "tasks", "envs", "a3c"},
    "viewer": {"errors", "files", "limits", "sim", "tasks", "envs", "a3c", "deploy"},
    "bench": {"errors", "files", "limits", "sim", "tasks", "envs", "a3c", "backends", "viewer"},
    "export": {"errors", "files", "limits", "sim", "tasks", "envs", "a3c"},
    "deploy": {"errors", "files", "limits", "sim", "tasks", "envs"},  # an exported policy: no torch, no training
    "cli": {"errors", "files", "limits", "sim", "tasks", "envs", "a3c", "backends", "viewer", "bench", "export",
            "deploy"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The arm_a3c modules that module `name` imports anywhere in its text (`from P import x` counts as
    importing P.x when that is a module, else P)."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return {m for m in found if m in MODULES and m != name}


def part_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "arm_a3c"


def test_every_module_of_the_library_belongs_to_a_known_part():
    unknown = sorted(name for name in MODULES if part_of(name) not in MAY_IMPORT and name != "arm_a3c")
    assert not unknown, f"give these a part in MAY_IMPORT (and docs/architecture.md's layout): {unknown}"


def test_no_module_imports_itself_round_a_circle():
    graph = {name: imports_of(name) for name in MODULES}
    circles = []

    def visit(node: str, path: list[str], on_path: set[str], done: set[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                on_path.add(nxt)
                visit(nxt, path + [nxt], on_path, done)
                on_path.discard(nxt)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start], {start}, done)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if part_of(n) in MAY_IMPORT))
def test_each_part_imports_only_from_the_parts_below_it(name):
    part = part_of(name)
    upward = sorted(m for m in imports_of(name) if part_of(m) not in MAY_IMPORT[part] | {part, "arm_a3c"})
    assert not upward, f"{name} ({part}) imports {upward}, from parts above it"


def test_the_circle_finder_finds_a_circle(monkeypatch):
    """The circle test must be able to fail: two modules that import each other are caught."""
    import test_layout

    fake = {"arm_a3c.a3c.one": {"arm_a3c.a3c.two"}, "arm_a3c.a3c.two": {"arm_a3c.a3c.one"}}
    monkeypatch.setattr(test_layout, "MODULES", dict.fromkeys(fake, None))
    monkeypatch.setattr(test_layout, "imports_of", lambda name: fake[name])
    with pytest.raises(AssertionError, match="arm_a3c.a3c.one -> arm_a3c.a3c.two -> arm_a3c.a3c.one"):
        test_layout.test_no_module_imports_itself_round_a_circle()
