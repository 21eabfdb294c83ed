"""Settings read as the types their dataclass fields declare (``--set``, config files).

``--set loop.packing=False`` is false, ``loop.bf16=maybe`` and ``loop.lr=abc`` are refused in one
line naming the key, the value and the expected type, before anything loads.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Mapping

from lowres_adapters.errors import LowresError
from lowres_adapters.specs import LANGUAGE_CODE_PATTERN


class SettingsError(LowresError):
    """Raise for a bad setting (unknown key, wrong type, invalid value): one line."""


class InvalidSetting(SettingsError, ValueError):
    """Raise from a settings dataclass's checks: a one-line error on its own, and a ``ValueError``
    that ``config_from_dict`` prefixes with where the value came from."""


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def typed_values(config_class: type, values: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """Return ``values`` converted to the field types of ``config_class`` (bool, int, float, str,
    tuples, enums, ``Literal``, ``Optional``); unknown keys pass through for the caller to report.

    Text from ``--set`` is read as the field's type (``False`` and ``no`` are false, ``none`` is
    None for optional fields, ``a,b`` is a tuple); anything else that does not fit is refused.

    Args:
        config_class: The frozen settings dataclass.
        values: Field values (from a config file or ``--set``).
        where: Where they came from, for the message.
        prefix: Section of the keys in messages, e.g. ``"loop."``.

    Raises:
        SettingsError: One line naming the key, the value and the expected type.
    """
    hints = typing.get_type_hints(config_class)
    converted = dict(values)
    for key, value in values.items():
        if key in hints:
            converted[key] = _typed(hints[key], value, f"{where}: {prefix}{key} = {value!r}")
    return converted


def _typed(hint: Any, value: Any, said: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object or isinstance(hint, typing.TypeVar):
        return value
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            return None
        for option in options:
            try:
                return _typed(option, value, said)
            except SettingsError:
                continue
        raise SettingsError(f"{said}: expected {' or '.join(_describe(arg) for arg in args)}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise SettingsError(f"{said}: expected one of {', '.join(repr(arg) for arg in args)}")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if value in (member, member.value, member.name):
                return member
        raise SettingsError(f"{said}: expected one of {', '.join(repr(member.value) for member in hint)}")
    if origin is tuple or hint is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{said}: expected {_describe(hint)}")
        item = args[0] if args and (len(args) == 2 and args[1] is Ellipsis or len(args) == 1) else Any
        if args and not (len(args) == 2 and args[1] is Ellipsis) and len(args) != len(value):
            raise SettingsError(f"{said}: expected {_describe(hint)}")
        items = args if args and not (len(args) == 2 and args[1] is Ellipsis) else [item] * len(value)
        return tuple(_typed(kind, element, said) for kind, element in zip(items, value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise SettingsError(f"{said}: expected true or false")
    if hint in (int, float):
        accepted = (int,) if hint is int else (int, float)
        if isinstance(value, accepted) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value.strip())
            except ValueError:
                pass
        raise SettingsError(f"{said}: expected {'an integer' if hint is int else 'a number'}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise SettingsError(f"{said}: expected text")
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
        if isinstance(value, Mapping):
            return value
        raise SettingsError(f"{said}: expected a table of settings")
    return value


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", type(None): "none"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is tuple or hint is tuple:
        return "a list (e.g. a,b)"
    return getattr(hint, "__name__", str(hint))


def check_language(code: Any, where: str) -> None:
    """Refuse a language that is not 3 lowercase letters, hinting the ISO 639-3 code of a 2-letter one."""
    if isinstance(code, str) and LANGUAGE_CODE_PATTERN.match(code):
        return
    hint = ""
    if isinstance(code, str) and len(code) == 2:
        import pycountry  # lazy: ~60 ms at every CLI start otherwise; only this hint needs it

        language = pycountry.languages.get(alpha_2=code.lower())
        if language is not None:
            hint = f" (use {language.alpha_3!r} for {language.name})"
    raise SettingsError(f"{where}: language {code!r} must be an ISO 639-3 code (3 lowercase letters){hint}")
