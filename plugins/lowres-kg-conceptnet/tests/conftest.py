"""Run this package's tests like the core's: no network beyond 127.0.0.1, strict plugins, fresh registries."""

from lowres_adapters.testing.plugin_tests import fresh_registry  # noqa: F401
