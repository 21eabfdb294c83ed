"""Run this package's tests like the core's: no network beyond 127.0.0.1, strict plugins, fresh registries."""

from __future__ import annotations

import os

os.environ["LOWRES_STRICT_PLUGINS"] = "1"

from lowres_adapters.testing import netguard  # noqa: E402

netguard.install()

import pytest  # noqa: E402

from lowres_adapters.registry import reset_registry  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_registry():
    """Give every test a fresh process-wide registry (discovered again from entry points)."""
    reset_registry(None)
    yield
    reset_registry(None)
