"""The house's import rules, read from the source with ``ast``.

Product code (connectors, mapping, sync, scheduler, web) never imports ``sandbox``; the
sandbox's modules never import each other in a circle (TYPE_CHECKING and function-local
imports count: a circle hidden from the interpreter is still a circle for a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("connectors", "mapping", "sync", "web", "scheduler.py")


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, anywhere in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _product_files() -> list[Path]:
    files: list[Path] = []
    for name in PRODUCT:
        p = ROOT / name
        files.extend([p] if p.is_file() else sorted(p.rglob("*.py")))
    return files


@pytest.mark.parametrize("path", _product_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_the_sandbox(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if m == "sandbox" or m.startswith("sandbox."))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _graph(package: str) -> dict[str, set[str]]:
    mods = {p.stem: p for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for m in _imports(path):
            parts = m.split(".")
            if parts[0] == package and len(parts) > 1 and parts[1] in mods and parts[1] != name:
                deps.add(parts[1])
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` (as a path), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_cycle_finder_sees_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", ["sandbox", "connectors"])
def test_no_import_circles(package: str) -> None:
    assert _cycle(_graph(package)) is None
