"""Exact and near-duplicate removal that streams (memory: one 8-byte hash per kept text).

Two texts are *near-duplicates* when they are equal after case folding and removing everything
that is not a letter (punctuation, digits, spaces, symbols): ``"Open the file."`` and
``"open the file 2"`` collide. This catches the boilerplate variants common in web and
documentation corpora without a fuzzy index; it does not catch paraphrases.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")


def _hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


class _LettersOnly(dict):
    """A ``str.translate`` table that keeps letters and marks and deletes everything else."""

    def __missing__(self, code_point: int) -> str | None:
        char = chr(code_point)
        kept = char if unicodedata.category(char)[0] in "LM" else None
        self[code_point] = kept
        return kept


_LETTERS_ONLY = _LettersOnly()


def near_duplicate_key(text: str) -> str:
    """Return the key two near-duplicate texts share: case-folded letters and marks only."""
    folded = unicodedata.normalize("NFC", text.casefold())
    letters = folded.translate(_LETTERS_ONLY)
    return letters or folded  # a text without letters is only ever an exact duplicate


class Deduplicator:
    """Remember texts seen so far and say whether a new one is a duplicate.

    Args:
        exact: Drop texts equal to one seen before.
        near: Drop texts whose :func:`near_duplicate_key` equals one seen before.
    """

    def __init__(self, exact: bool = True, near: bool = False) -> None:
        self.exact = exact
        self.near = near
        self._exact_seen: set[bytes] = set()
        self._near_seen: set[bytes] = set()
        self.dropped_exact = 0
        self.dropped_near = 0

    def is_new(self, text: str) -> bool:
        """Return True (and remember ``text``) unless it duplicates a text seen before."""
        if self.exact:
            digest = _hash(text)
            if digest in self._exact_seen:
                self.dropped_exact += 1
                return False
            self._exact_seen.add(digest)
        if self.near:
            digest = _hash(near_duplicate_key(text))
            if digest in self._near_seen:
                self.dropped_near += 1
                return False
            self._near_seen.add(digest)
        return True


def deduplicate(items: Iterable[Item], text_of: Callable[[Item], str], exact: bool = True,
                near: bool = False) -> Iterator[Item]:
    """Yield the items whose text was not seen before (first occurrence wins)."""
    seen = Deduplicator(exact=exact, near=near)
    for item in items:
        if seen.is_new(text_of(item)):
            yield item
