"""Fetch LibreOffice help from Debian packages and extract its paragraphs by (page, element id).

Each language has the same HTML pages under ``usr/share/libreoffice/help/<lang>/text/<module>/``
with the same element ids (``par_*``, ``hd_*``), so paragraphs align across languages by
(page path, id).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from lowres_adapters.plugin import (
    LowresError,
    apt_download,
    deb_extract,
    normalize_text,
    record_provenance,
    write_jsonl,
)

logger = logging.getLogger("lowres_adapters.data")

PARAGRAPHS_FILE = "paragraphs.jsonl"
LICENCE_FILE = "LICENSE-libreoffice-help.txt"
# ISO 639-3 code -> (Debian package, help folder name)
LANGUAGES = {
    "dzo": ("libreoffice-help-dz", "dz"),
    "zho": ("libreoffice-help-zh-cn", "zh-CN"),
    "eng": ("libreoffice-help-en-us", "en-US"),
}
ALIGNABLE_ID = re.compile(r"^(par|hd)_")
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                           "source", "track", "wbr"})


class ParagraphParser(HTMLParser):
    """Collect the text of every element whose id starts with ``par_`` or ``hd_``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._open: list[tuple[str, str | None, list[str]]] = []  # (tag, alignable id, text parts)
        self.paragraphs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_ELEMENTS:
            if tag == "br" and self._open:
                self._open[-1][2].append(" ")
            return
        element_id = dict(attrs).get("id") or ""
        self._open.append((tag, element_id if ALIGNABLE_ID.match(element_id) else None, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS or all(open_tag != tag for open_tag, _, _ in self._open):
            return
        while self._open:
            open_tag, element_id, parts = self._open.pop()
            text = "".join(parts)
            if self._open:
                self._open[-1][2].append(text)
            if element_id:
                self.paragraphs.setdefault(element_id, normalize_text(text))
            if open_tag == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def page_paragraphs(path: Path) -> dict[str, str]:
    """Return element id -> normalised text of one help page."""
    parser = ParagraphParser()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    return parser.paragraphs


def read_help_tree(root: Path) -> dict[tuple[str, str], str]:
    """Return (page path under ``text/``, element id) -> text for every page of one language."""
    result = {}
    for page in sorted((root / "text").rglob("*.html")):
        relative = page.relative_to(root / "text").as_posix()
        for element_id, text in page_paragraphs(page).items():
            result[(relative, element_id)] = text
    return result


def iter_rows(trees: dict[str, dict[tuple[str, str], str]]) -> Iterator[dict[str, str]]:
    """Yield one row per (page, id) with non-empty Dzongkha text, with the other languages' text."""
    for (page, element_id), dzongkha in sorted(trees["dzo"].items()):
        if not dzongkha:
            continue
        row = {"page": page, "module": page.split("/", 1)[0], "id": element_id, "dzo": dzongkha}
        for code in ("zho", "eng"):
            row[code] = trees[code].get((page, element_id), "")
        yield row


def fetch(directory: Path) -> None:
    """Download, extract and align the help of the three languages into ``paragraphs.jsonl``."""
    with tempfile.TemporaryDirectory(prefix="lowres-dzo-") as scratch:
        scratch_dir = Path(scratch)
        packages = [package for package, _ in LANGUAGES.values()]
        logger.info("dzo: apt-get download %s", " ".join(packages))
        debs = apt_download(packages, scratch_dir)
        trees = {}
        for (code, (package, folder)), deb in zip(LANGUAGES.items(), debs):
            extracted = scratch_dir / package
            info = deb_extract(deb, extracted)
            record_provenance(directory, route=f"apt {package}", version=info["version"], sha256=info["sha256"],
                              licence="MPL-2.0", notice=f"/usr/share/doc/{package}/copyright")
            root = extracted / "usr/share/libreoffice/help" / folder
            if not (root / "text").is_dir():
                raise LowresError(f"route apt {package} failed: no help pages under {root}")
            logger.info("dzo: parsing %s help pages", package)
            trees[code] = read_help_tree(root)
        copyright_file = scratch_dir / "libreoffice-help-dz/usr/share/doc/libreoffice-help-dz/copyright"
        if copyright_file.is_file():
            shutil.copyfile(copyright_file, directory / LICENCE_FILE)
        count = write_jsonl(directory / PARAGRAPHS_FILE, iter_rows(trees))
        logger.info("dzo: %d Dzongkha paragraphs aligned by (page, id)", count)
