"""A text file's texts with their positions, to read a file on from where an earlier pass stopped."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from lowres_adapters.data.files import normalize_text
from lowres_adapters.data.text import is_jsonl_file, raw_text_of_line
from lowres_adapters.errors import InputError


class PositionedTexts:
    """The normalised, non-blank texts of a file with the line number and byte offset after each,
    read on from any line end (a segment's end in a token store).

    Args:
        path: A ``.txt``/``.jsonl`` file, ``.gz`` or not (checked before: a line that is not UTF-8
            now means the file changed, and is an error naming the line).
        text_field: The field of a ``.jsonl`` line holding the text.
    """

    def __init__(self, path: Path, text_field: str = "text") -> None:
        self.path, self.text_field, self.is_jsonl = path, text_field, is_jsonl_file(path)
        self._handle: Any = None
        self.line, self.offset = 0, 0
        self._pending: tuple[int, int, str] | None = None

    def close(self) -> None:
        """Close the file (reading again reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def skip_to(self, line: int, offset: int) -> None:
        """Continue reading after line ``line``, which ends at byte ``offset`` (of the decompressed text)."""
        self._pending = None
        compressed = self.path.name.endswith(".gz")
        if self._handle is None or not compressed or self.line > line:
            self.close()
            self._handle = gzip.open(self.path, "rb") if compressed else self.path.open("rb")
            self.line = self.offset = 0
        if not compressed:
            self._handle.seek(offset)
            self.line, self.offset = line, offset
        while self.line < line and (raw := self._handle.readline()):  # a .gz file is read through to the line
            self.line, self.offset = self.line + 1, self.offset + len(raw)

    def peek(self) -> tuple[int, int, str] | None:
        """Return the next ``(line, offset after it, text)`` without consuming it (None at the end)."""
        if self._pending is None:
            self._pending = self._next()
        return self._pending

    def take(self) -> tuple[int, int, str] | None:
        """Return the next ``(line, offset after it, text)`` and consume it (None at the end)."""
        found, self._pending = self.peek(), None
        return found

    def _next(self) -> tuple[int, int, str] | None:
        if self._handle is None:
            self.skip_to(0, 0)
        while raw := self._handle.readline():
            self.line, self.offset = self.line + 1, self.offset + len(raw)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:  # the file changed since its check: name the line
                raise InputError(self.path, self.line, "expected UTF-8 text (the file changed after its check)") from None
            if self.line == 1:
                line = line.lstrip("\ufeff")
            found = raw_text_of_line(self.path, self.line, line, self.is_jsonl, self.text_field)
            text = normalize_text(found[1]) if found is not None else ""
            if text:
                return self.line, self.offset, text
        return None
