"""Monolingual text: ``.txt``, ``.jsonl``, ``.gz`` and folders -> :class:`TextExample`, streaming.

Every text is NFC-normalised with whitespace collapsed; exact and near-duplicates are dropped;
length and script filters apply; a deterministic split can be selected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from lowres_adapters.data.dedup import Deduplicator
from lowres_adapters.data.examples import Provenance, TextExample
from lowres_adapters.data.files import checked_text_file, iter_files, iter_lines, normalize_text
from lowres_adapters.data.languages import script_fraction, validate_language, validate_script
from lowres_adapters.data.splits import DEFAULT_FRACTIONS, SPLITS, split_of
from lowres_adapters.errors import InputError, LowresError

TEXT_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class TextSourceConfig:
    """Settings of the ``text`` data source.

    Attributes:
        path: A file (``.txt``, ``.jsonl``, optionally ``.gz``) or a folder of such files.
        lang: ISO 639-3 code of the text.
        text_field: Field holding the text in ``.jsonl`` files (an ``id`` field is used if present).
        min_chars: Drop texts shorter than this many characters.
        max_chars: Drop texts longer than this (0: no limit).
        script: Keep only texts mostly in this ISO 15924 script (empty: no script filter).
        min_script_fraction: Share of letters that must be in ``script``.
        dedup: Drop exact duplicates.
        near_dedup: Also drop near-duplicates (equal letters after case folding).
        fuzzy_dedup: Also drop texts similar to an earlier one by MinHash LSH (character 5-grams,
            Jaccard above about 0.7): one changed word in a long sentence.
        split: Keep only this split (``train``/``validation``/``test``; empty: keep all).
        split_by: Unit kept together by the split: ``"line"`` or ``"file"``.
        seed: Seed of the split assignment.
        source_name: Provenance name of the corpus (defaults to the file name).
        licence: Licence recorded in the provenance.
    """

    path: str = ""
    lang: str = ""
    text_field: str = "text"
    min_chars: int = 1
    max_chars: int = 0
    script: str = ""
    min_script_fraction: float = 0.5
    dedup: bool = True
    near_dedup: bool = False
    fuzzy_dedup: bool = False
    split: str = ""
    split_by: str = "line"
    seed: int = 0
    source_name: str = ""
    licence: str = "unknown"

    def __post_init__(self) -> None:
        if self.lang:
            validate_language(self.lang)
        if self.script:
            validate_script(self.script)
        if self.split and self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.split_by not in ("line", "file"):
            raise ValueError(f"split_by must be 'line' or 'file', got {self.split_by!r}")
        if self.min_chars < 0 or self.max_chars < 0:
            raise ValueError("min_chars and max_chars must be >= 0")
        if not 0.0 <= self.min_script_fraction <= 1.0:
            raise ValueError("min_script_fraction must be between 0 and 1")


def iter_raw_texts(path: Path, text_field: str = "text") -> Iterator[tuple[str, str]]:
    """Yield ``(id, raw_text)`` from one ``.txt``/``.jsonl`` file (``.gz`` or not).

    Raises:
        InputError: On invalid UTF-8, truncated ``.gz``, an empty file, or a JSONL line that is
            not an object with a string ``text_field``.
    """
    is_jsonl = is_jsonl_file(path)
    for line_number, line in iter_lines(path):
        found = raw_text_of_line(path, line_number, line, is_jsonl, text_field)
        if found is not None:
            yield found


def is_jsonl_file(path: Path) -> bool:
    """Return whether ``path`` holds one JSON object per line (``.jsonl``, ``.jsonl.gz``)."""
    return path.name.endswith((".jsonl", ".jsonl.gz"))


def raw_text_of_line(path: Path, line_number: int, line: str, is_jsonl: bool,
                     text_field: str = "text") -> tuple[str, str] | None:
    """Return ``(id, raw_text)`` of one decoded line of ``path``, or None for a blank line.

    Raises:
        InputError: On a JSONL line that is not an object with a string ``text_field``.
    """
    if not line.strip():
        return None
    if not is_jsonl:
        return f"{path.name}:{line_number}", line
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(path, line_number, f"expected one JSON object per line ({error.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
        raise InputError(path, line_number, f"expected a JSON object with a string field {text_field!r}")
    return str(row.get("id", f"{path.name}:{line_number}")), row[text_field]


def keep_text(text: str, config: TextSourceConfig) -> bool:
    """Return whether ``text`` passes the length and script filters of ``config``."""
    if len(text) < max(config.min_chars, 1):
        return False
    if config.max_chars and len(text) > config.max_chars:
        return False
    if config.script and script_fraction(text, config.script) < config.min_script_fraction:
        return False
    return True


def open_text(config: TextSourceConfig) -> Iterator[TextExample]:
    """Stream the cleaned, filtered, deduplicated texts of ``config.path``."""
    if not config.path:
        raise LowresError("the text source needs path=FILE_OR_FOLDER")
    if not config.lang:
        raise LowresError("the text source needs lang=ISO_639_3_CODE")
    seen = Deduplicator(exact=config.dedup, near=config.near_dedup, fuzzy=config.fuzzy_dedup)
    for file in iter_files(config.path, TEXT_SUFFIXES):
        provenance = Provenance(config.source_name or file.name, config.licence, detail=str(file))
        for example_id, raw in iter_raw_texts(file, config.text_field):
            if config.split:
                group = file.name if config.split_by == "file" else example_id
                if split_of(group, DEFAULT_FRACTIONS, config.seed) != config.split:
                    continue
            text = normalize_text(raw)
            if keep_text(text, config) and seen.is_new(text):
                yield TextExample(text=text, id=example_id, lang=config.lang, provenance=provenance)


def read_text_file(path: str | Path, lang: str) -> list[TextExample]:
    """Read a user's text file (one text per line, or ``.jsonl`` with ``text``) into examples.

    Texts are NFC-normalised; blank lines are skipped; nothing else is filtered or deduplicated.

    Raises:
        InputError: On a bad file (see :func:`iter_raw_texts`).
        LowresError: On an unknown language code.
    """
    validate_language(lang)
    path = Path(path)
    return list(_file_examples(path, lang, Provenance(path.name, "user", detail=str(path))))


def _file_examples(path: Path, lang: str, provenance: Provenance) -> Iterator[TextExample]:
    for example_id, raw in iter_raw_texts(path):
        text = normalize_text(raw)
        if text:
            yield TextExample(text=text, id=example_id, lang=lang, provenance=provenance)


@dataclass(frozen=True)
class TextFile:
    """A user's text file as a corpus that streams: iterating it reads the file again, one
    :class:`TextExample` at a time, as :func:`read_text_file` reads it; nothing is held in memory.

    Build it with :func:`open_text_file`, which checks the file first.

    Attributes:
        path: The file (``.txt``/``.jsonl``, ``.gz`` or not).
        lang: ISO 639-3 code of the text.
        sha256: SHA-256 of the file's bytes (names its content, e.g. in a token cache).
    """

    path: Path
    lang: str
    sha256: str
    provenance: Provenance = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "provenance", Provenance(self.path.name, "user", detail=str(self.path)))

    def __iter__(self) -> Iterator[TextExample]:
        return _file_examples(self.path, self.lang, self.provenance)

    def texts(self) -> Iterator[str]:
        """Yield the texts alone (what a tokeniser reads)."""
        return (example.text for example in self)

    def __bool__(self) -> bool:
        return True  # open_text_file refused a file without text


def open_text_file(path: str | Path, lang: str) -> TextFile:
    """Return a user's text file as a streaming corpus, checked first (UTF-8, not empty, a ``.jsonl``
    file's objects) in one pass (skipped for a file that passed unchanged before:
    :func:`~lowres_adapters.data.files.checked_text_file`).

    Raises:
        InputError: On a missing, empty or non-UTF-8 file (file and line named).
        LowresError: On an unknown language code.
    """
    validate_language(lang)
    path = Path(path)
    return TextFile(path=path, lang=lang, sha256=checked_text_file(path, _check_json_lines))


def _check_json_lines(path: Path) -> None:
    """Read a ``.jsonl`` file's objects once (each line an object with a string ``text``), so a bad line
    is found before any model loads; other files have nothing more to check."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        for _ in iter_raw_texts(path):
            pass
