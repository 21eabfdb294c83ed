"""Register the Dzongkha language pack."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import LanguagePack, SourceInfo, hookimpl
from lowres_lang_dzo.help_pages import fetch
from lowres_lang_dzo.load import load

SOURCES = (
    SourceInfo(name="libreoffice-help", route="apt libreoffice-help-dz libreoffice-help-zh-cn libreoffice-help-en-us",
               licence="MPL-2.0",
               description="LibreOffice help pages in Dzongkha, Chinese and English, aligned by (page, element id)",
               url="https://help.libreoffice.org"),
)

PACK = LanguagePack(
    code="dzo", script="Tibt", name="Dzongkha", native_name="རྫོང་ཁ",
    description="LibreOffice help: Chinese/English-Dzongkha paragraph pairs and a help-module task",
    fetch=fetch, load=load, sources=SOURCES, default_recipe="language",
)


@hookimpl
def register_language_packs(register: Callable[[LanguagePack], None]) -> None:
    """Register the Dzongkha pack."""
    register(PACK)
