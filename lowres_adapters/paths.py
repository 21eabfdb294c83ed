"""Where the library keeps its cache (data, converted models, tokenised corpora)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

CACHE_ENV = "LOWRES_CACHE"


def cache_dir() -> Path:
    """Return the cache root: ``$LOWRES_CACHE`` if set, else the user's cache dir."""
    override = os.environ.get(CACHE_ENV)
    root = Path(override) if override else Path(platformdirs.user_cache_dir("lowres-adapters"))
    return root.expanduser()


def data_dir(code: str) -> Path:
    """Return the folder holding a language pack's fetched data."""
    return cache_dir() / "data" / code


def models_dir() -> Path:
    """Return the folder holding converted base models."""
    return cache_dir() / "models"
