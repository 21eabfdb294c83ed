"""The ``cli`` object the ``register_commands`` hook receives (the shape ``llm`` plugins know)."""

from __future__ import annotations

from typing import Any, Callable

import click

from lowres_adapters.specs import CommandSpec


class CommandTable:
    """What ``register_commands(cli)`` receives: add click commands, eagerly or by import path.

    Args:
        register: Records one :class:`~lowres_adapters.specs.CommandSpec` for the calling plugin.
    """

    def __init__(self, register: Callable[[CommandSpec], None]) -> None:
        self._register = register

    def add_command(self, command: Any, name: str | None = None) -> None:
        """Add a ``click.Command`` (or group) under ``name`` (default: its own name)."""
        self._register(CommandSpec(name=name or command.name, command=command,
                                   description=getattr(command, "short_help", None) or ""))

    def add_lazy(self, name: str, target: str, description: str = "") -> None:
        """Add the command ``"module:attribute"``, imported only when ``name`` runs or help lists it."""
        self._register(CommandSpec(name=name, command=target, description=description))

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        """Decorate a function as a click command and add it (same arguments as ``click.command``)."""
        return self._adding(click.command(*args, **kwargs))

    def group(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        """Decorate a function as a click group and add it (same arguments as ``click.group``)."""
        return self._adding(click.group(*args, **kwargs))

    def _adding(self, make: Callable[[Callable[..., Any]], Any]) -> Callable[[Callable[..., Any]], Any]:
        def decorator(function: Callable[..., Any]) -> Any:
            command = make(function)
            self.add_command(command)
            return command

        return decorator
