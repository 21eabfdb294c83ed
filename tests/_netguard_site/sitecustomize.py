"""Installed on PYTHONPATH by tests/conftest.py so every Python subprocess of the tests is guarded."""

import os

if os.environ.get("LOWRES_NETGUARD") == "1":
    from lowres_adapters.testing import netguard

    netguard.install()
