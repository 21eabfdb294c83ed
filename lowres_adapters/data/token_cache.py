"""Tokenised corpora cached on disk as memory-mapped arrays, so repeated runs skip tokenising.

A corpus is stored once per (tokenizer, tokenising variant, texts) under
``<cache>/tokens/<key>/``: ``ids.npy`` (every token id, concatenated, uint32), ``offsets.npy``
(``(examples + 1,)`` int64 start offsets) and ``meta.json``. The key is a SHA-256 over the
tokenizer's full definition, the variant name and every text, so a changed tokenizer or corpus
never reads a stale entry. Entries are written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_directory
from lowres_adapters.paths import cache_dir

FORMAT_VERSION = 1
Feature = dict[str, list[int]]


@dataclass(frozen=True)
class TokenizedCorpus:
    """Token ids of a corpus, memory-mapped from the cache.

    Attributes:
        ids: ``(total_tokens,)`` uint32 ids of every example, concatenated.
        offsets: ``(examples + 1,)`` start of each example in ``ids`` (the last entry is the total).
        key: The cache key the corpus is stored under.
        from_cache: True when it was read from disk rather than tokenised now.
    """

    ids: np.ndarray
    offsets: np.ndarray
    key: str
    from_cache: bool

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index]:self.offsets[index + 1]]

    def lengths(self) -> np.ndarray:
        """Return ``(examples,)`` token counts."""
        return np.diff(self.offsets)

    def features(self) -> list[Feature]:
        """Return ``[{"input_ids": [...]}, ...]`` as the training loop's batching expects."""
        return [{"input_ids": self[index].tolist()} for index in range(len(self))]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Return a SHA-256 over everything that decides how ``tokenizer`` splits text.

    Fast tokenizers (transformers or ``tokenizers.Tokenizer``) are hashed from their full JSON
    definition; others from their class, vocabulary and special tokens.
    """
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "to_str"):
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    special = getattr(tokenizer, "special_tokens_map", {})
    digest.update(json.dumps(special, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def corpus_key(tokenizer: Any, texts: Iterable[str], variant: str) -> str:
    """Return the cache key of ``texts`` tokenised by ``tokenizer`` in the way named ``variant``."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}\0{variant}\0{tokenizer_fingerprint(tokenizer)}\0".encode())
    count = 0
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
        count += 1
    digest.update(count.to_bytes(8, "little"))
    return digest.hexdigest()[:32]


def cached_token_ids(
    texts: Sequence[str], tokenizer: Any, *, variant: str = "plain",
    tokenize: Callable[[Sequence[str]], Sequence[Sequence[int]]] | None = None,
    root: Path | None = None,
) -> TokenizedCorpus:
    """Return the token ids of ``texts``, tokenising only when the cache has no entry yet.

    Args:
        texts: The corpus, one example per text.
        tokenizer: The tokenizer (part of the key).
        variant: Names how ``tokenize`` uses the tokenizer (special tokens, truncation...): part
            of the key, so change it whenever ``tokenize`` changes.
        tokenize: ``texts -> list of id lists``; default: the tokenizer with its special tokens.
        root: Cache folder (default ``<cache>/tokens``).
    """
    root = Path(root) if root is not None else cache_dir() / "tokens"
    key = corpus_key(tokenizer, texts, variant)
    entry = root / key
    if (entry / "meta.json").exists():
        return _read(entry, key)
    if tokenize is None:
        def tokenize(batch: Sequence[str]) -> Sequence[Sequence[int]]:
            return tokenizer(list(batch))["input_ids"]
    token_lists = tokenize(texts)
    if len(token_lists) != len(texts):
        raise LowresError(f"tokenising {len(texts)} texts gave {len(token_lists)} examples")
    _write(entry, token_lists, variant)
    return TokenizedCorpus(**{**_read(entry, key).__dict__, "from_cache": False})


def cached_features(
    texts: Sequence[str], tokenizer: Any, tokenize_features: Callable[[Any, Sequence[str], int], list[Feature]],
    max_length: int, *, root: Path | None = None,
) -> list[Feature]:
    """Return ``tokenize_features(tokenizer, texts, max_length)``, cached.

    ``tokenize_features`` is one of the loop's tokenisers (``batching.tokenize_for_clm`` /
    ``tokenize_for_mlm``), which skip empty texts; the cache keeps one entry per text (empty for
    skipped ones) and drops the empty ones again.
    """
    variant = f"{getattr(tokenize_features, '__module__', '')}.{tokenize_features.__qualname__}:{max_length}"

    def tokenize(batch: Sequence[str]) -> list[list[int]]:
        token_lists = []
        for text in batch:
            features = tokenize_features(tokenizer, [text], max_length)
            token_lists.append(list(features[0]["input_ids"]) if features else [])
        return token_lists

    corpus = cached_token_ids(texts, tokenizer, variant=variant, tokenize=tokenize, root=root)
    return [feature for feature in corpus.features() if feature["input_ids"]]


def _write(entry: Path, token_lists: Sequence[Sequence[int]], variant: str) -> None:
    lengths = np.fromiter((len(ids) for ids in token_lists), dtype=np.int64, count=len(token_lists))
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)  # (examples + 1,)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.empty(int(offsets[-1]), dtype=np.uint32)  # (total_tokens,)
    for index, token_ids in enumerate(token_lists):
        ids[offsets[index]:offsets[index + 1]] = np.asarray(token_ids, dtype=np.int64)
    with atomic_directory(entry) as staging:  # the key names the content: a concurrent writer's entry is the same
        np.save(staging / "ids.npy", ids)
        np.save(staging / "offsets.npy", offsets)
        meta = {"format_version": FORMAT_VERSION, "variant": variant, "examples": len(token_lists),
                "tokens": int(offsets[-1])}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def _read(entry: Path, key: str) -> TokenizedCorpus:
    try:
        ids = np.load(entry / "ids.npy", mmap_mode="r")
        offsets = np.load(entry / "offsets.npy")
    except (OSError, ValueError) as error:
        raise LowresError(f"token cache entry {entry} is damaged ({error}); delete the folder") from None
    return TokenizedCorpus(ids=ids, offsets=offsets, key=key, from_cache=True)
