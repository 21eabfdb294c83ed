"""User-facing errors: one clear line, no traceback in the CLI."""

from __future__ import annotations


class LowresError(Exception):
    """Raise for a mistake the user can fix; the CLI prints only ``str(error)``."""


class InputError(LowresError):
    """Raise for bad input data, naming the file, the line and what was expected.

    Args:
        path: The file that holds the bad input.
        line: 1-based line number, or None when the problem is the whole file.
        expected: What should have been there.
    """

    def __init__(self, path: object, line: int | None, expected: str) -> None:
        self.path = str(path)
        self.line = line
        self.expected = expected
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {expected}")


class RegistryError(LowresError):
    """Raise for a plugin that breaks the registry's rules (names, duplicates, lookups)."""


class PluginLoadError(RegistryError):
    """Raise in strict mode when an installed plugin fails to import or to register."""
