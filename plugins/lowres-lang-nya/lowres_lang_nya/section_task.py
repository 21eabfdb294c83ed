"""The ``bible_section`` task: which section of the canon a verse belongs to, in English and Chichewa.

Labels come from the book number, so the English (KJV) verse and its Chichewa translation carry
the same label: a classifier trained on English verses can be scored on Chichewa verses
(zero-shot cross-lingual transfer), and a few Chichewa verses can be added (few-shot).

Sections (book numbers in the Protestant order of both Bibles):

=========== ======= ==================================================
label       books   first and last book
=========== ======= ==================================================
law         1-5     Genesis - Deuteronomy
history     6-17    Joshua - Esther
wisdom      18-22   Job - Song of Solomon (wisdom and poetry)
prophets    23-39   Isaiah - Malachi
gospels     40-43   Matthew - John
acts        44      Acts
epistles    45-65   Romans - Jude
revelation  66      Revelation
=========== ======= ==================================================

Split by chapter, never by verse (neighbouring verses share names and phrasing):
chapters whose number ends in 0 (10, 20, ...) are ``test``, in 5 (5, 15, ...) ``validation``,
all others ``train``. Every section has test chapters (Acts: 10, 20; Revelation: 10, 20). The
test chapters are never seen by any training input of the pack: in the Old Testament they are
the pack's held-out (validation) chapters, which the language adapter and the alignment pairs
do not train on; the New Testament is the pack's test split as a whole.

Splits of the task (``LabeledExample.lang`` says the language of each verse):

- ``train``: English verses of the train chapters (the labelled high-resource side);
- ``train_nya``: Chichewa verses of the same chapters (the few-shot pool);
- ``validation`` / ``test``: Chichewa verses (what transfer is scored on);
- ``validation_eng`` / ``test_eng``: the English verses of those chapters (in-language reference).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from lowres_adapters.plugin import LabeledExample, TaskData

TASK_NAME = "bible_section"
SECTIONS: tuple[tuple[str, range], ...] = (
    ("law", range(1, 6)),
    ("history", range(6, 18)),
    ("wisdom", range(18, 23)),
    ("prophets", range(23, 40)),
    ("gospels", range(40, 44)),
    ("acts", range(44, 45)),
    ("epistles", range(45, 66)),
    ("revelation", range(66, 67)),
)
LABELS = tuple(name for name, _ in SECTIONS)
TEST_CHAPTER_DIGIT = 0
VALIDATION_CHAPTER_DIGIT = 5
SPLIT_NAMES = ("train", "train_nya", "validation", "validation_eng", "test", "test_eng")


def section_of_book(book: int) -> str:
    """Return the canon section of a book number (1-66).

    Raises:
        ValueError: For a number outside 1-66.
    """
    for name, books in SECTIONS:
        if book in books:
            return name
    raise ValueError(f"book number {book} is outside 1-66")


def task_split_of_chapter(chapter: int) -> str:
    """Return ``train``, ``validation`` or ``test`` for a chapter number (its last digit decides)."""
    digit = chapter % 10
    if digit == TEST_CHAPTER_DIGIT:
        return "test"
    return "validation" if digit == VALIDATION_CHAPTER_DIGIT else "train"


def build_section_task(rows: Iterable[Mapping[str, object]]) -> TaskData:
    """Return the ``bible_section`` task from aligned verse rows (``book``, ``chapter``, ``id``, ``eng``, ``nya``)."""
    splits: dict[str, list[LabeledExample]] = {name: [] for name in SPLIT_NAMES}
    for row in rows:
        label = section_of_book(int(row["book"]))  # type: ignore[arg-type]
        split = task_split_of_chapter(int(row["chapter"]))  # type: ignore[arg-type]
        english = LabeledExample(text=str(row["eng"]), label=label, id=str(row["id"]), lang="eng")
        chichewa = LabeledExample(text=str(row["nya"]), label=label, id=str(row["id"]), lang="nya")
        if split == "train":
            splits["train"].append(english)
            splits["train_nya"].append(chichewa)
        else:
            splits[split].append(chichewa)
            splits[f"{split}_eng"].append(english)
    return TaskData(
        kind="sequence_classification", labels=LABELS, splits=splits,
        description=("Section of the canon of a Bible verse (8 classes from the book number: law 1-5, history "
                     "6-17, wisdom 18-22, prophets 23-39, gospels 40-43, acts 44, epistles 45-65, revelation 66). "
                     "Train on English (KJV) verses, score Chichewa verses. Split by chapter: chapter number "
                     "ending in 0 -> test, in 5 -> validation, else train; train_nya holds the Chichewa verses "
                     "of the train chapters (few-shot pool), validation_eng/test_eng the English of the "
                     "held-out chapters."),
    )
