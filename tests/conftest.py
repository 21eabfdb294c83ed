"""Test configuration: network guard, strict plugins, isolated caches, fresh registries.

Environment is set at import time, before huggingface_hub or transformers are imported, because
both read their endpoint settings once when imported.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="lowres-tests-"))
_SITE = str(Path(__file__).parent / "_netguard_site")

os.environ["LOWRES_NETGUARD"] = "1"
os.environ["LOWRES_STRICT_PLUGINS"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SITE, os.environ.get("PYTHONPATH", "")) if p)
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf-home")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Real data and the converted default model live in the user's cache (filled by `make data`);
# tests that write caches of their own point LOWRES_CACHE at a tmp_path.


def _session_cache(keep_private: tuple[str, ...] = ("tokens", "checked-files")) -> Path:
    """Return a cache root for this session: every folder of the user's cache linked in, except the
    ones a ``--text`` run writes (token stores, checked-file memos), which stay in the session's tmp."""
    from lowres_adapters.paths import cache_dir

    user_cache, session_cache = cache_dir(), _SESSION_TMP / "cache"
    session_cache.mkdir()
    if user_cache.is_dir():
        for entry in user_cache.iterdir():
            if entry.name not in keep_private:
                (session_cache / entry.name).symlink_to(entry)
    for name in ("models", "data"):  # where `make data` and the model conversion write: shared, as before
        if not (session_cache / name).exists():
            (user_cache / name).mkdir(parents=True, exist_ok=True)
            (session_cache / name).symlink_to(user_cache / name)
    return session_cache


os.environ["LOWRES_CACHE"] = str(_session_cache())

from lowres_adapters.testing import netguard  # noqa: E402

netguard.install()

# --- loopback Hub: started before huggingface_hub is imported (lowres_adapters.testing.hub) ---
# Users alice (hf_loopback_alice_token) and bob (hf_loopback_bob_token); see docs/hub.md.
try:
    from lowres_adapters.testing.hub import start_session_hub  # noqa: E402
except ImportError:  # pragma: no cover - until the Hub module exists
    start_session_hub = None
if start_session_hub is not None:
    _HUB = start_session_hub(_SESSION_TMP / "hub")
    os.environ["HF_ENDPOINT"] = _HUB.url

import pytest  # noqa: E402

from lowres_adapters.registry import Registry, reset_registry  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_registry():
    """Give every test a fresh process-wide registry (discovered again from entry points)."""
    reset_registry(None)
    yield
    reset_registry(None)


@pytest.fixture
def empty_registry() -> Registry:
    """Return a strict registry with no entry-point plugins, for throwaway plugins."""
    registry = Registry(strict=True, entry_points=False)
    reset_registry(registry)
    return registry


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    import shutil

    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
    sys.stdout.flush()
