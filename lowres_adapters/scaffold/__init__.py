"""``lowres new KIND NAME``: package skeletons for plugin authors whose own tests pass out of the box.

Each kind module holds its files as text with placeholders (``__NAME__`` the registered name,
``__CLASS__`` its CamelCase, ``__UPPER__`` its upper case, ``__PKG__`` the import package, ``__DIST__`` the pip distribution,
plus kind-specific ones); :func:`render` fills them in and :func:`write_package` writes the
folder atomically. Templates are Python strings, not data files, so they ship in every wheel.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from lowres_adapters import __version__
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_directory
from lowres_adapters.specs import LANGUAGE_CODE_PATTERN, NAME_PATTERN

KINDS = {
    "adapter-type": ("lowres_adapters.scaffold.adapter_type", "lowres-adapter-", "lowres_adapter_"),
    "lang-pack": ("lowres_adapters.scaffold.lang_pack", "lowres-lang-", "lowres_lang_"),
    "alignment-loss": ("lowres_adapters.scaffold.alignment_loss", "lowres-loss-", "lowres_loss_"),
    "data-source": ("lowres_adapters.scaffold.data_source", "lowres-source-", "lowres_source_"),
}
"""Kind -> (template module, distribution prefix, package prefix)."""

PLUGIN = '''"""Registers the __NAME__ __LABEL__ (found through the `lowres_adapters` entry point)."""

from __future__ import annotations

from lowres_adapters.plugin import hookimpl

from __PKG__.__MODULE__ import __SPEC__


@hookimpl
def __HOOK__(register):
    """Register __NAME__."""
    register(__SPEC__)
'''
"""The entry-point module of the kinds whose spec lives in a module of its own."""

PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "__DESCRIPTION__"
readme = "README.md"
requires-python = ">=3.10"
license = "Apache-2.0"
dependencies = ["lowres-adapters>=__LIBRARY_VERSION__"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How lowres-adapters finds the plugin: the `lowres_adapters` entry-point group.
[project.entry-points.lowres_adapters]
__NAME__ = "__PKG__.plugin"

[tool.setuptools.packages.find]
include = ["__PKG__*"]

[tool.setuptools.package-data]
__PKG__ = ["*.tsv"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''# __DIST__

__DESCRIPTION__

A plugin for [lowres-adapters](https://pypi.org/project/lowres-adapters/), made with
`lowres new __KIND__ __NAME__`.

## Develop

```
pip install -e .          # registers the plugin through its entry point
pytest                    # the conformance kit of lowres_adapters.plugin
lowres plugins            # shows __PKG__.plugin and what it registered
__TRY__
```

## Publish

```
python -m build           # dist/__PKG__-0.1.0-py3-none-any.whl and the sdist
twine upload dist/*       # then anyone can: pip install __DIST__
```

Import only from `lowres_adapters.plugin` (the stable plugin API; see lowres-adapters'
docs/plugins.md). Everything else in lowres_adapters is internal.
'''


def camel_case(name: str) -> str:
    """Return ``my_lora`` as ``MyLora``."""
    return "".join(part.capitalize() for part in name.split("_"))


def render(kind: str, name: str, **extra: str) -> dict[str, str]:
    """Return relative path -> file text of a ``kind`` package registering ``name``.

    Raises:
        LowresError: For an unknown kind or a name the registry would refuse.
    """
    if kind not in KINDS:
        raise LowresError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    pattern = LANGUAGE_CODE_PATTERN if kind == "lang-pack" else NAME_PATTERN
    if not pattern.match(name):
        what = "an ISO 639-3 code (3 lowercase letters)" if kind == "lang-pack" else f"a name matching {pattern.pattern}"
        raise LowresError(f"{name!r} is not {what}")
    module_name, dist_prefix, package_prefix = KINDS[kind]
    module = importlib.import_module(module_name)
    values = {"__NAME__": name, "__CLASS__": camel_case(name), "__UPPER__": name.upper(), "__PKG__": f"{package_prefix}{name}",
              "__DIST__": f"{dist_prefix}{name.replace('_', '-')}", "__KIND__": kind,
              "__LIBRARY_VERSION__": __version__, **module.defaults(name), **extra}
    files = {"pyproject.toml": PYPROJECT, "README.md": README, "__PKG__/__init__.py": '"""__DESCRIPTION__"""\n',
             "__PKG__/plugin.py": PLUGIN, **module.FILES}
    return {_fill(path, values): _fill(text, values) for path, text in files.items()}


def _fill(text: str, values: dict[str, str]) -> str:
    """Replace placeholders until none is left (a value may hold another placeholder)."""
    for _ in range(3):
        for key in sorted(values, key=len, reverse=True):
            text = text.replace(key, values[key])
    return text


def write_package(kind: str, name: str, directory: Path, **extra: str) -> Path:
    """Write the package into ``directory`` (which must not exist) atomically; return it."""
    directory = Path(directory)
    if directory.exists():
        raise LowresError(f"{directory} already exists; choose another --directory or remove it")
    files = render(kind, name, **extra)
    with atomic_directory(directory) as temporary:
        for relative, text in files.items():
            path = temporary / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return directory
