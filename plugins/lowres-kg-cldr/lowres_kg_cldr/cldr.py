"""CLDR emoji annotations (npm ``cldr-annotations-full``) as multilingual (concept, keyword) edges.

``package/annotations/<locale>/annotations.json`` maps each emoji to its name (``tts``) and
keywords (``default``) in that locale. Edges per locale: ``emoji SymbolOf name`` and
``name RelatedTo keyword`` (keywords equal to the name are skipped).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lowres_adapters.plugin import (
    Edge,
    InputError,
    LowresError,
    Provenance,
    atomic_directory,
    cache_dir,
    extract_tarball,
    normalize_text,
    npm_pack,
    to_iso639_3,
    write_json,
)

logger = logging.getLogger("lowres_adapters.data")

NPM_SPEC = "cldr-annotations-full@48.2.0"
LICENCE = "Unicode-3.0"
RELATIONS = ("SymbolOf", "RelatedTo")


@dataclass(frozen=True)
class CldrAnnotationsConfig:
    """Settings of the ``cldr_annotations`` data source.

    Attributes:
        directory: An extracted ``cldr-annotations-full`` package (holding ``annotations/``);
            empty: fetch it with ``npm pack`` into the cache on first use.
        locales: CLDR locales (``"sw"``, ``"zh-Hant"``) or ISO 639-3 codes to read (empty: all).
        relations: Which edges to yield: ``SymbolOf`` (emoji -> name), ``RelatedTo`` (name -> keyword).
    """

    directory: str = ""
    locales: tuple[str, ...] = ()
    relations: tuple[str, ...] = RELATIONS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.relations) - set(RELATIONS))
        if unknown:
            raise ValueError(f"unknown relation(s) {', '.join(unknown)}; expected some of {', '.join(RELATIONS)}")


def cached_package_dir() -> Path:
    """Return the cache folder of the extracted npm package, fetching it once if missing."""
    final = cache_dir() / "graphs" / NPM_SPEC.replace("@", "-")
    if (final / "annotations").is_dir():
        return final
    logger.info("cldr: npm pack %s", NPM_SPEC)
    with tempfile.TemporaryDirectory(prefix="lowres-cldr-") as scratch, atomic_directory(final) as temporary:
        package = extract_tarball(npm_pack(NPM_SPEC, Path(scratch)), Path(scratch))
        (package / "annotations").rename(temporary / "annotations")
        for name in ("LICENSE", "package.json"):
            if (package / name).is_file():
                (package / name).rename(temporary / name)
        write_json(temporary / "provenance.json", {"route": f"npm {NPM_SPEC}", "licence": LICENCE})
    return final


def _wanted(locale: str, locales: tuple[str, ...]) -> bool:
    return not locales or locale in locales or to_iso639_3(locale) in locales


def iter_locale_edges(path: Path, locale: str, relations: tuple[str, ...]) -> Iterator[Edge]:
    """Yield the edges of one ``annotations.json``."""
    try:
        data = json.loads(path.read_text("utf-8"))["annotations"].get("annotations", {})  # some locales are empty
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise InputError(path, None, f"expected CLDR annotations JSON ({type(error).__name__})") from None
    lang = to_iso639_3(locale)
    provenance = Provenance("cldr-annotations", LICENCE, detail=f"npm {NPM_SPEC} {locale}")
    for emoji, entry in data.items():
        names = entry.get("tts") or []
        name = normalize_text(names[0]) if names else ""
        if not name:
            continue
        if "SymbolOf" in relations:
            yield Edge(start=emoji, relation="SymbolOf", end=name, start_lang=lang, end_lang=lang,
                       id=f"cldr:{locale}:{emoji}:name", provenance=provenance)
        if "RelatedTo" in relations:
            for keyword in entry.get("default") or []:
                keyword = normalize_text(keyword)
                if keyword and keyword != name:
                    yield Edge(start=name, relation="RelatedTo", end=keyword, start_lang=lang, end_lang=lang,
                               id=f"cldr:{locale}:{emoji}:{keyword}", provenance=provenance)


def open_cldr_annotations(config: CldrAnnotationsConfig) -> Iterator[Edge]:
    """Stream (concept, keyword) edges of the chosen locales, locale by locale in sorted order."""
    root = Path(config.directory) if config.directory else cached_package_dir()
    annotations = root / "annotations"
    if not annotations.is_dir():
        raise LowresError(f"{root}: expected an extracted {NPM_SPEC} package with an annotations/ folder")
    found = False
    for locale_dir in sorted(p for p in annotations.iterdir() if p.is_dir()):
        if _wanted(locale_dir.name, config.locales) and (locale_dir / "annotations.json").is_file():
            found = True
            yield from iter_locale_edges(locale_dir / "annotations.json", locale_dir.name, config.relations)
    if not found:
        raise LowresError(f"no CLDR locale matches {', '.join(config.locales)} in {annotations}")
