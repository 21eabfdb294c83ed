"""The core's import structure: one direction between layers, no cycles (lazy imports count too).

The layers and the forbidden imports are the import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``); docs/architecture.md explains them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
OWNED_ELSEWHERE = ("lowres_adapters.bench",)
"""Packages whose internal cycles are left to their own issue (#19 reshapes the bench)."""
OUTSIDE_THE_CORE = {"lowres_adapters.builtin", "lowres_adapters.testing", "lowres_adapters.plugin",
                    "lowres_adapters.scaffold", "lowres_adapters.__main__"}
"""Plugins and kits on top of the core: they may import any layer, and no layer imports them."""


def _lint_imports() -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("lint-imports")
    command = [str(executable)] if executable.exists() else [shutil.which("lint-imports") or "lint-imports"]
    return subprocess.run([*command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_are_kept():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _contract_modules() -> tuple[set[str], set[str]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contracts = {contract["id"]: contract for contract in config["contracts"]}
    layered = {name.strip() for layer in contracts["layers"]["layers"] for name in layer.replace("|", ":").split(":")}
    return layered, set(contracts["core-without-plugins"]["source_modules"])


def test_every_core_module_has_a_layer():
    """A new top-level module must be placed in a layer (pyproject.toml), or be a plugin or kit."""
    layered, checked = _contract_modules()
    graph = grimp.build_graph("lowres_adapters", cache_dir=None)
    top_level = {name for name in graph.modules if name.count(".") == 1}
    assert top_level - layered - OUTSIDE_THE_CORE == set()
    assert layered - top_level == set()  # no stale names
    assert checked == layered


def _import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Return the strongly connected groups of two or more modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles_inside_the_package():
    graph = grimp.build_graph("lowres_adapters", exclude_type_checking_imports=True, cache_dir=None)
    cycles = [group for group in _import_cycles(graph) if not all(m.startswith(OWNED_ELSEWHERE) for m in group)]
    assert cycles == []


def test_the_cycle_finder_sees_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    assert _import_cycles(graph) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("command", [["--help"], ["list", "adapters"], ["data", "--help"]])
def test_fast_commands_import_neither_torch_nor_transformers(command):
    code = ("import sys; from lowres_adapters.cli import main\n"
            f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'adapters', 'matplotlib') if m in sys.modules]\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in result.stderr, result.stderr[-2000:]
