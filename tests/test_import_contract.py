"""The house's floors: the import contract, no import cycles, and a complete Flower bundle.

``make test`` runs ``lint-imports`` (the layers contract in pyproject.toml); these tests
add what a layers contract cannot see: cycles between modules of one package, and
whether ``flwr run``'s bundle (``fab-include``) carries every module the apps import.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from flwr.cli.utils import build_pathspec

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES: list[str] = PYPROJECT["tool"]["importlinter"]["root_packages"]
FLOWER_APPS = ("coordinator.server_app", "client_node.client_app")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm over module imports (function-level imports included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
                continue
            if child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[module] = min(low[module], index[child])

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_layers_contract_holds() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-4000:]


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    cycles = _strongly_connected(graph)

    assert cycles == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")

    assert _strongly_connected(graph) == [["a.x", "a.y"]]


def test_the_node_and_the_coordinator_share_only_the_protocol(graph: grimp.ImportGraph) -> None:
    for importer, imported in (("client_node", "coordinator"), ("coordinator", "client_node")):
        chains = graph.find_shortest_chains(importer=importer, imported=imported)

        assert chains == set(), (importer, imported)


@pytest.mark.parametrize("app", FLOWER_APPS)
def test_the_flower_bundle_carries_every_module_the_app_imports(
    graph: grimp.ImportGraph, app: str
) -> None:
    # Matched as `flwr build` matches them (gitignore-style patterns).
    include = build_pathspec(PYPROJECT["tool"]["flwr"]["app"]["fab-include"])
    needed = {app, *graph.find_upstream_modules(app)}

    missing = []
    for module in sorted(needed):
        path = module.replace(".", "/")
        file = f"{path}/__init__.py" if (ROOT / path).is_dir() else f"{path}.py"
        if not include.match_file(file):
            missing.append(file)

    assert missing == []
