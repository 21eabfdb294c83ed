"""Plugins import the library only through ``lowres_adapters.plugin``, and that module keeps its promises."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def library_imports(folder: Path) -> set[str]:
    """Return every ``lowres_adapters`` module imported by the package code under ``folder`` (tests excluded)."""
    found = set()
    for path in folder.rglob("*.py"):
        if "tests" in path.relative_to(folder).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found.update(m for m in modules if m.split(".")[0] == "lowres_adapters")
    return found


@pytest.mark.parametrize("package", sorted(p.name for p in PLUGINS.iterdir() if (p / "pyproject.toml").exists()))
def test_plugins_import_only_the_plugin_api(package: str) -> None:
    imported = library_imports(PLUGINS / package)
    assert imported <= {"lowres_adapters.plugin"}, f"{package} imports {sorted(imported - {'lowres_adapters.plugin'})}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("from lowres_adapters.data.cache import write_jsonl\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    import lowres_adapters.registry\n")
    assert library_imports(tmp_path) == {"lowres_adapters.data.cache", "lowres_adapters.registry"}


def test_every_public_name_resolves_and_importing_stays_light() -> None:
    code = ("import sys, lowres_adapters.plugin as p\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'adapters') if m in sys.modules)\n"
            "missing = [n for n in p.__all__ if getattr(p, n, None) is None]\n"
            "print(heavy, missing)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"
