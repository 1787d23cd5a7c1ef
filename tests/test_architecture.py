"""The house's shape: layers that import one way, no cycle, a short top level, unique names."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp

import ocrwatch

PACKAGE = Path(ocrwatch.__file__).parent


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


class TestImports:
    """Imports run one way: the layers contract holds and no modules import each other in a ring."""

    def test_no_cycle_even_through_imports_in_functions(self) -> None:
        graph = grimp.build_graph("ocrwatch", include_external_packages=False)
        assert _cycles(graph) == []

    def test_a_ring_is_found(self) -> None:
        graph = grimp.ImportGraph()
        for name in ("p", "p.a", "p.b", "p.c"):
            graph.add_module(name)
        graph.add_import(importer="p.a", imported="p.b")
        graph.add_import(importer="p.b", imported="p.c")
        graph.add_import(importer="p.c", imported="p.a")
        assert _cycles(graph) == [["p.a", "p.b", "p.c"]]

    def test_layers_contract_holds(self) -> None:
        lint = Path(sys.executable).with_name("lint-imports")
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run(
            [str(lint), "--config", str(root / "pyproject.toml")],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-3000:]
        assert "1 kept, 0 broken" in done.stdout


class TestLayout:
    """The folder tree reads as the architecture: few top-level modules, names used once."""

    def test_at_most_ten_modules_on_top(self) -> None:
        top = sorted(p.name for p in PACKAGE.glob("*.py"))
        assert len(top) <= 10, top

    def test_no_two_modules_share_a_file_name(self) -> None:
        names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
        assert [n for n, count in names.items() if count > 1] == []
