"""Exact and near-duplicate removal that streams (memory: a few hashes per kept text).

Two levels of "near":

- the *letters key*: texts equal after case folding and removing everything that is not a letter
  or mark (punctuation, digits, spaces, symbols) collide: ``"Open the file."`` / ``"open the file 2"``;
- *MinHash LSH* on character 5-grams of the letters key: texts whose 5-gram sets have a Jaccard
  similarity above about 0.7 collide (128 permutations in 16 bands of 8 rows), which also catches
  a changed or added word in a long sentence. It does not catch paraphrases.
"""

from __future__ import annotations

import hashlib
import unicodedata
import zlib
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

Item = TypeVar("Item")
MERSENNE_PRIME = (1 << 31) - 1  # a * x + b stays below 2**64 for 32-bit x


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


class MinHashIndex:
    """Locality-sensitive index of MinHash signatures over character n-grams.

    Args:
        num_perm: Number of hash permutations (signature length).
        bands: LSH bands; ``num_perm`` must be a multiple. More bands -> lower similarity threshold
            (about ``(1 / bands) ** (bands / num_perm)``).
        shingle: Character n-gram length.
        seed: Seed of the permutations (fixed: results never depend on the run).
    """

    def __init__(self, num_perm: int = 128, bands: int = 16, shingle: int = 5, seed: int = 0) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        generator = np.random.default_rng(seed)
        self.multipliers = generator.integers(1, MERSENNE_PRIME, size=num_perm, dtype=np.uint64)
        self.offsets = generator.integers(0, MERSENNE_PRIME, size=num_perm, dtype=np.uint64)
        self.bands = bands
        self.shingle = shingle
        self._buckets: list[set[bytes]] = [set() for _ in range(bands)]

    def signature(self, key: str) -> np.ndarray:
        """Return the (num_perm,) MinHash signature of the n-grams of ``key``."""
        width = self.shingle
        grams = {key[i:i + width] for i in range(max(len(key) - width + 1, 1))}
        hashes = np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))
        permuted = hashes[:, None] * self.multipliers[None, :] + self.offsets[None, :]  # (grams, num_perm)
        return (permuted % np.uint64(MERSENNE_PRIME)).min(axis=0)  # (num_perm,)

    def add_if_new(self, key: str) -> bool:
        """Add ``key`` and return True, unless a band of its signature was seen (then return False)."""
        rows = self.signature(key).reshape(self.bands, -1)  # (bands, rows per band)
        band_keys = [row.tobytes() for row in rows]
        if any(band_key in bucket for band_key, bucket in zip(band_keys, self._buckets)):
            return False
        for band_key, bucket in zip(band_keys, self._buckets):
            bucket.add(band_key)
        return True


class Deduplicator:
    """Remember texts seen so far and say whether a new one is a duplicate.

    Args:
        exact: Drop texts equal to one seen before.
        near: Drop texts whose letters key equals one seen before.
        fuzzy: Also drop texts similar to one seen before by MinHash LSH (implies ``near``).
    """

    def __init__(self, exact: bool = True, near: bool = False, fuzzy: bool = False) -> None:
        self.exact = exact
        self.near = near or fuzzy
        self._exact_seen: set[bytes] = set()
        self._near_seen: set[bytes] = set()
        self._minhash = MinHashIndex() if fuzzy else None
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
            key = near_duplicate_key(text)
            digest = _hash(key)
            if digest in self._near_seen or (self._minhash is not None and not self._minhash.add_if_new(key)):
                self.dropped_near += 1
                return False
            self._near_seen.add(digest)
        return True


def deduplicate(items: Iterable[Item], text_of: Callable[[Item], str], exact: bool = True,
                near: bool = False, fuzzy: bool = False) -> Iterator[Item]:
    """Yield the items whose text was not seen before (first occurrence wins)."""
    seen = Deduplicator(exact=exact, near=near, fuzzy=fuzzy)
    for item in items:
        if seen.is_new(text_of(item)):
            yield item
