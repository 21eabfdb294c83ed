"""Plugin discovery and the registry of everything plugins provide.

Rules (learned from what llm, datasette and pluggy do):

- Discovery is lazy and happens once, on the first lookup.
- Built-in plugins register first and their names are reserved. A third-party spec reusing a taken
  name is rejected alone, naming both plugins; the plugin's other specs and everyone else's stay.
  Registering an equal spec again is a no-op.
- A plugin that fails to import, to validate its hooks (``check_pending``) or to register is
  recorded with its distribution and error and skipped; in strict mode it raises instead, naming
  the plugin at fault (never the built-in whose name it reused).
- A lookup miss lists close matches and, where known, the pip package that provides the name.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as importlib_metadata
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable

import pluggy

from lowres_adapters import hookspecs
from lowres_adapters.command_table import CommandTable
from lowres_adapters.errors import PluginLoadError, RegistryError
from lowres_adapters.specs import LANGUAGE_CODE_PATTERN, iter_spec_kinds, spec_name

ENTRY_POINT_GROUP = "lowres_adapters"
STRICT_ENV = "LOWRES_STRICT_PLUGINS"

KIND_LABELS = {
    "adapter_types": "adapter type",
    "alignment_losses": "alignment loss",
    "data_sources": "data source",
    "language_packs": "language pack",
    "recipes": "recipe",
    "task_kinds": "task kind",
    "commands": "command",
}

BUILTIN_PLUGINS = (
    "lowres_adapters.builtin.adapter_types",
    "lowres_adapters.builtin.alignment_losses",
    "lowres_adapters.builtin.data_sources",
    "lowres_adapters.builtin.task_kinds",
    "lowres_adapters.training.recipes",
    "lowres_adapters.cli",
)
"""Modules registered before any entry point, so their names are reserved. An entry point whose
module lives inside ``lowres_adapters`` counts as built-in too."""


@dataclass
class PluginInfo:
    """What ``lowres plugins`` shows for one plugin.

    Attributes:
        name: The plugin's module name (or the name given to :meth:`Registry.add_plugin`).
        distribution: The pip distribution that installed it, if known.
        version: That distribution's version, if known.
        registered: Kind -> names this plugin registered.
        errors: Load or registration errors (one line each).
        builtin: Part of lowres-adapters itself (registered first; its names are reserved).
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    builtin: bool = False

    @property
    def requirement(self) -> str | None:
        """Return ``dist==version`` for artifact metadata, or None for an unpackaged plugin."""
        if self.distribution and self.version:
            return f"{self.distribution}=={self.version}"
        return self.distribution

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "registered": self.registered,
            "errors": self.errors,
            "builtin": self.builtin,
        }


@dataclass(frozen=True)
class Registered:
    """A spec together with the plugin that registered it."""

    spec: Any
    plugin: PluginInfo


def _known_providers() -> dict[str, dict[str, str]]:
    """Return kind -> name -> pip package, for hints on a lookup miss (data, not code)."""
    text = resources.files("lowres_adapters").joinpath("known_plugins.json").read_text("utf-8")
    return json.loads(text)


class Registry:
    """Holds everything the installed plugins registered.

    Args:
        strict: Raise :class:`PluginLoadError` on a broken plugin instead of recording it.
            Defaults to the ``LOWRES_STRICT_PLUGINS`` environment variable.
        entry_points: Discover plugins through the ``lowres_adapters`` entry-point group. Tests
            turn this off and add throwaway plugins with :meth:`add_plugin`.
    """

    def __init__(self, strict: bool | None = None, entry_points: bool = True) -> None:
        if strict is None:
            strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
        self.strict = strict
        self._use_entry_points = entry_points
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind, _, _ in iter_spec_kinds()}
        self._plugins: dict[str, PluginInfo] = {}
        self._discovered = False
        self._lock = threading.RLock()

    # -- discovery -----------------------------------------------------------------------------

    def _discover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            if not self._use_entry_points:
                return
            builtin, third_party = [], []
            for entry_point in _entry_points():
                (builtin if _is_builtin(entry_point.value) else third_party).append(entry_point)
            for module in BUILTIN_PLUGINS:
                self._load(module, _builtin_info(module), builtin=True)
            for entry_point in builtin + third_party:
                dist = getattr(entry_point, "dist", None)
                info = PluginInfo(
                    name=entry_point.value.split(":")[0],
                    distribution=dist.metadata["Name"] if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    builtin=_is_builtin(entry_point.value),
                )
                self._load(entry_point.value, info, builtin=info.builtin)

    def _load(self, target: str, info: PluginInfo, builtin: bool) -> None:
        """Import ``module[:attribute]`` and register it; an import failure is the plugin's error."""
        if info.name in self._plugins:
            return
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
            plugin = getattr(module, attribute) if attribute else module
        except Exception as error:  # noqa: BLE001 - any import failure is the plugin's, not ours
            if builtin and isinstance(error, ModuleNotFoundError) and error.name == module_name:
                return  # that part is not in this build
            self._fail(info, f"failed to import {target}: {type(error).__name__}: {error}")
            return
        self._register_plugin(plugin, info)

    def add_plugin(self, plugin: object, name: str | None = None, distribution: str | None = None,
                   version: str | None = None) -> PluginInfo:
        """Register a plugin object or module directly (tests, notebooks, embedded use).

        Args:
            plugin: A module or object with ``@hookimpl`` functions.
            name: Plugin name; defaults to the module's ``__name__``.
            distribution: The distribution to report for it.
            version: That distribution's version.

        Returns:
            The plugin's info, with what it registered and any errors.
        """
        self._discover()
        info = PluginInfo(name=name or getattr(plugin, "__name__", repr(plugin)),
                          distribution=distribution, version=version)
        if info.name in self._plugins:
            raise RegistryError(f"a plugin named {info.name!r} is already registered")
        self._register_plugin(plugin, info)
        return info

    def _register_plugin(self, plugin: object, info: PluginInfo) -> None:
        self._plugins[info.name] = info
        try:
            self._manager.register(plugin, name=info.name)
            self._manager.check_pending()
        except Exception as error:  # noqa: BLE001 - pluggy validation errors and friends
            if self._manager.is_registered(plugin):
                self._manager.unregister(plugin)
            self._fail(info, f"invalid hooks: {error}")
            return
        for kind, spec_class, hook_name in iter_spec_kinds():
            for impl in getattr(self._manager.hook, hook_name).get_hookimpls():
                if impl.plugin is plugin:
                    self._call_hook(impl.function, kind, spec_class, info)

    def _call_hook(self, function: Callable[..., Any], kind: str, spec_class: type,
                   info: PluginInfo) -> None:
        def register(spec: object) -> None:
            try:
                self._add(kind, spec_class, spec, info)
            except RegistryError as error:  # rejected alone: the plugin's other specs still register
                self._fail(info, str(error))

        try:
            if kind == "commands":
                function(cli=CommandTable(register))
            else:
                function(register=register)
        except PluginLoadError:
            raise
        except Exception as error:  # noqa: BLE001 - a plugin bug must not stop the others
            self._fail(info, f"{KIND_LABELS[kind]} registration failed: {type(error).__name__}: {error}")

    def _add(self, kind: str, spec_class: type, spec: object, info: PluginInfo) -> None:
        label = KIND_LABELS[kind]
        if not isinstance(spec, spec_class):
            raise RegistryError(
                f"plugin {info.name!r} registered {type(spec).__name__} as {label}; expected {spec_class.__name__}"
            )
        name = spec_name(spec)
        existing = self._items[kind].get(name)
        if existing is not None:
            if existing.spec == spec:
                return
            owner = "the built-in" if existing.plugin.builtin else "the plugin"
            raise RegistryError(
                f"{label} {name!r} rejected: the name is taken by {owner} {existing.plugin.name!r} "
                f"({existing.plugin.requirement or 'unpackaged'}); {info.name!r} "
                f"({info.requirement or 'unpackaged'}) must register it under another name"
            )
        self._items[kind][name] = Registered(spec, info)
        info.registered.setdefault(kind, []).append(name)

    def _fail(self, info: PluginInfo, message: str) -> None:
        self._plugins.setdefault(info.name, info)
        info.errors.append(message)
        if self.strict:
            where = f" (from {info.requirement})" if info.distribution else ""
            raise PluginLoadError(f"plugin {info.name!r}{where}: {message}")

    # -- lookups -------------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Return every plugin seen, including the broken ones, sorted by name."""
        self._discover()
        return sorted(self._plugins.values(), key=lambda p: p.name)

    def warning_line(self) -> str | None:
        """Return one line naming every plugin with errors (``lowres plugins`` has the detail), or None."""
        broken = [info for info in self.plugins() if info.errors]
        if not broken:
            return None
        named = ", ".join(f"{info.requirement or info.name} ({len(info.errors)} error"
                          f"{'s' if len(info.errors) > 1 else ''})" for info in broken)
        return f"warning: plugin errors in {named}; run `lowres plugins` for details"

    def names(self, kind: str) -> list[str]:
        """Return the registered names of one kind, sorted."""
        self._discover()
        return sorted(self._items[kind])

    def entries(self, kind: str) -> list[Registered]:
        """Return the registered specs of one kind with their plugins, sorted by name."""
        self._discover()
        return [self._items[kind][name] for name in sorted(self._items[kind])]

    def lookup(self, kind: str, name: str) -> Registered:
        """Return the spec registered under ``name``, or raise a helpful :class:`RegistryError`."""
        self._discover()
        found = self._items[kind].get(name)
        if found is not None:
            return found
        raise RegistryError(self._miss_message(kind, name))

    def _miss_message(self, kind: str, name: str) -> str:
        label = KIND_LABELS[kind]
        known = sorted(self._items[kind])
        parts = [f"unknown {label} {name!r}"]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            parts.append(f"did you mean {', '.join(repr(c) for c in close)}?")
        package = _known_providers().get(kind, {}).get(name)
        if package is None and kind == "language_packs" and _is_iso639_3(name):
            package = f"lowres-lang-{name}"
        if package:
            parts.append(f"it may be provided by: pip install {package}")
        parts.append(f"installed: {', '.join(known) if known else 'none'}")
        return "; ".join(parts)

    def adapter_type(self, name: str) -> Any:
        """Return the :class:`~lowres_adapters.specs.AdapterType` named ``name``."""
        return self.lookup("adapter_types", name).spec

    def alignment_loss(self, name: str) -> Any:
        """Return the :class:`~lowres_adapters.specs.AlignmentLoss` named ``name``."""
        return self.lookup("alignment_losses", name).spec

    def data_source(self, name: str) -> Any:
        """Return the :class:`~lowres_adapters.specs.DataSource` named ``name``."""
        return self.lookup("data_sources", name).spec

    def language_pack(self, code: str) -> Any:
        """Return the :class:`~lowres_adapters.specs.LanguagePack` for ISO 639-3 ``code``."""
        return self.lookup("language_packs", code).spec

    def provider(self, kind: str, name: str) -> PluginInfo:
        """Return the plugin that registered ``name`` (for ``dist==version`` in artifacts)."""
        return self.lookup(kind, name).plugin


def _is_builtin(target: str) -> bool:
    return target.split(":")[0].split(".")[0] == "lowres_adapters"


def _builtin_info(module: str) -> PluginInfo:
    try:
        version: str | None = importlib_metadata.version("lowres-adapters")
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = None
    return PluginInfo(name=module, distribution="lowres-adapters", version=version, builtin=True)


def _entry_points() -> Iterable[importlib_metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (entry_point.name, entry_point.value)
        if key not in seen:  # the same distribution can be visible twice on sys.path
            seen.add(key)
            yield entry_point


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """Return the process-wide registry, discovering installed plugins on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def reset_registry(registry: Registry | None = None) -> None:
    """Replace the process-wide registry (tests use this for a fresh registry each)."""
    global _registry
    with _registry_lock:
        _registry = registry


def _is_iso639_3(code: str) -> bool:
    """Return True for a known ISO 639-3 code (only those get a ``lowres-lang-CODE`` pip hint)."""
    if not LANGUAGE_CODE_PATTERN.match(code):
        return False
    try:  # lazy: pycountry costs ~60 ms at every CLI start
        import pycountry
    except ImportError:  # pragma: no cover - pycountry is a dependency
        return True
    return pycountry.languages.get(alpha_3=code) is not None


def registered_target(kind: str, name: str, builtins: dict[str, Any], attribute: str) -> Any | None:
    """Return what the spec ``name`` of ``kind`` points at (its ``attribute``), imported when given as
    ``"module:name"``; the ``builtins`` table answers when the registry was built without the
    built-ins (tests, embedded use). None when nothing has that name or its module is not part of
    this build."""
    registry = get_registry()
    if name in registry.names(kind):
        target = getattr(registry.lookup(kind, name).spec, attribute)
    elif name in builtins:
        target = builtins[name]
    else:
        return None
    if not isinstance(target, str):
        return target
    module_name, member = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise
    return getattr(module, member)
