"""Conformance kit for data sources: one call a source plugin's own tests make.

    from lowres_adapters.plugin import check_data_source

    def test_my_source_conforms(tmp_path):
        good, bad = write_sample_files(tmp_path)
        check_data_source(MY_SOURCE, MyConfig(path=str(good)), bad_config=MyConfig(path=str(bad)))

It checks: the config round-trips through JSON; ``open(config)`` returns an iterator without
reading the input first (it streams: nothing is read before the first ``next``); every item is
the example type ``yields`` promises (``text`` -> TextExample, ``pairs`` -> PairExample, ``edges``
-> Edge) with a non-empty id and NFC text; and, given ``bad_config``, reading fails with one
:class:`~lowres_adapters.errors.LowresError` of one line (ideally an ``InputError`` naming the
file and line) instead of a traceback or silently skipping.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from lowres_adapters.data.examples import Edge, LabeledExample, PairExample, TextExample
from lowres_adapters.errors import LowresError
from lowres_adapters.specs import DataSource
from lowres_adapters.testing.conformance import (
    ConformanceReport,
    _check,
    _check_config_round_trip,
    _require,
    resolve_spec,
)

EXAMPLE_TYPES = {"text": TextExample, "pairs": PairExample, "edges": Edge, "labeled": LabeledExample}
"""What each ``yields`` value promises; other (new) kinds are checked for ids and text only."""

TEXT_FIELDS = ("text", "source", "target", "start", "end")


def check_data_source(spec_or_name: DataSource | str, config: Any, *, bad_config: Any = None,
                      limit: int = 1000) -> ConformanceReport:
    """Check a data source on ``config`` (and ``bad_config``); raise ``ConformanceError`` on the first failure.

    Args:
        spec_or_name: The :class:`~lowres_adapters.specs.DataSource`, or a registered name.
        config: A config pointing at a small, valid input.
        bad_config: A config pointing at broken input; reading it must raise one ``LowresError``.
        limit: Read at most this many items.

    Returns:
        A report whose ``passed`` lists the checks and ``trainable["items"]`` the items read.
    """
    spec = resolve_spec(spec_or_name, DataSource, "data_sources")
    report = ConformanceReport(adapter_type=spec.name)
    _check(spec.name, "config", "round-trip", lambda: _check_config_round_trip(spec, config), report)
    iterator = _check(spec.name, "open", "returns an iterator (streams)", lambda: _opened(spec, config), report)
    count = _check(spec.name, "items", f"are {spec.yields} examples with ids and NFC text",
                   lambda: _check_items(spec, iterator, limit), report)
    report.trainable["items"] = count
    if bad_config is not None:
        _check(spec.name, "bad input", "one clear error", lambda: _check_bad_input(spec, bad_config), report)
    return report


def _opened(spec: DataSource, config: Any) -> Any:
    opened = spec.open(config)
    _require(iter(opened) is opened, f"open() returned a {type(opened).__name__}, not an iterator: "
                                     "yield examples one by one instead of building a list")
    return opened


def _check_items(spec: DataSource, iterator: Any, limit: int) -> int:
    expected = EXAMPLE_TYPES.get(spec.yields)
    count = 0
    for item in iterator:
        count += 1
        if expected is not None:
            _require(isinstance(item, expected), f"item {count} is a {type(item).__name__}, "
                                                 f"but the source yields {spec.yields!r} ({expected.__name__})")
        _require(bool(getattr(item, "id", "x")), f"item {count} has an empty id")
        for name in TEXT_FIELDS:
            value = getattr(item, name, None)
            if isinstance(value, str):
                _require(unicodedata.normalize("NFC", value) == value, f"item {count}: {name} is not NFC")
        if count >= limit:
            break
    _require(count > 0, "the source yielded nothing for a valid input")
    return count


def _check_bad_input(spec: DataSource, config: Any) -> None:
    try:
        for _ in spec.open(config):
            pass
    except LowresError as error:
        _require("\n" not in str(error).strip(), f"the error spans several lines: {str(error)!r}")
        return
    except Exception as error:  # noqa: BLE001 - the point of the check
        raise AssertionError(f"bad input raised {type(error).__name__}: {error} (raise lowres_adapters.plugin."
                             "InputError(path, line, expected) instead)") from None
    raise AssertionError("bad input was read without an error (skipped silently?)")
