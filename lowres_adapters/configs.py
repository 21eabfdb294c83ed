"""Serialise and validate plugin configs (frozen dataclasses)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from lowres_adapters.errors import LowresError


def config_to_dict(config: object) -> dict[str, Any]:
    """Return the fields of a config dataclass as JSON-ready values (tuples become lists)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a config dataclass instance, got {config!r}")
    return _jsonable(dataclasses.asdict(config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def config_from_dict(config_class: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build ``config_class`` from a dict, rejecting unknown keys with one clear line.

    Args:
        config_class: The frozen config dataclass.
        values: Field values (as produced by :func:`config_to_dict`).
        where: What the values came from, for the error message.

    Raises:
        LowresError: On an unknown field or a value the config's validation rejects.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise LowresError(
            f"{where}: unknown setting(s) {', '.join(unknown)} for {config_class.__name__}; "
            f"expected some of: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(config_class)
    converted = {}
    for name, value in values.items():
        converted[name] = _coerce(hints.get(name), value)
    try:
        return config_class(**converted)
    except (TypeError, ValueError) as error:
        raise LowresError(f"{where}: {error}") from None


def _coerce(hint: Any, value: Any) -> Any:
    """Turn JSON lists back into tuples where the field is annotated as a tuple."""
    if isinstance(value, list):
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is tuple or tuple in args or any(typing.get_origin(a) is tuple for a in args):
            return tuple(value)
    return value


def replace_config(config: Any, where: str = "config", **changes: Any) -> Any:
    """Return a copy of ``config`` with ``changes``, with the same checks as :func:`config_from_dict`."""
    values = config_to_dict(config)
    values.update(changes)
    return config_from_dict(type(config), values, where=where)
