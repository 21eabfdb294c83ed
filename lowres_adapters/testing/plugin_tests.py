"""Run a plugin package's tests like the core's: no network beyond 127.0.0.1, strict plugins,
a fresh registry for every test. A plugin's ``tests/conftest.py`` needs one line::

    from lowres_adapters.testing.plugin_tests import fresh_registry  # noqa: F401
"""

from __future__ import annotations

import os

import pytest

from lowres_adapters.registry import reset_registry
from lowres_adapters.testing import netguard

os.environ["LOWRES_STRICT_PLUGINS"] = "1"
netguard.install()


@pytest.fixture(autouse=True)
def fresh_registry():
    """Give every test a fresh process-wide registry (discovered again from entry points)."""
    reset_registry(None)
    yield
    reset_registry(None)
