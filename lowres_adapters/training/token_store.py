"""Corpora bigger than memory: one streaming tokenising pass into a memory-mapped token cache.

A ``--text`` file goes through :mod:`~lowres_adapters.training.token_segments` instead, whose
segments are entries of this format, so training starts on the first; this one-pass form is for
any iterable of texts from Python.

:func:`stream_token_cache` reads a text file (``.txt``/``.jsonl``, ``.gz`` or not) or any
iterable of texts (a ``datasets`` streaming split, say) once, tokenises it in batches and appends
the ids to ``ids.bin`` (uint32) and each example's length to ``lengths.bin`` under
``<cache>/tokens/<key>/``, with the distinct ids in ``vocabulary.npy`` (for vocabulary trimming);
``meta.json`` is written last, so an interrupted pass leaves no entry (its staging folder is
removed by a later pass). The key hashes the file's bytes (or the caller's ``source_key``), the
tokenizer, the tokenising function and ``max_length``. A damaged entry (sizes that disagree with
``meta.json``) is rebuilt with a note on stderr.

:class:`TokenCacheFeatures` is the training loop's ``train_features`` over such an entry: a
sequence whose rows are built on access, so nothing but the example offsets lives in memory.
:meth:`TokenCacheFeatures.packed` gives the packed rows (the vectorised best-fit plan of
:func:`~lowres_adapters.training.packing.packing_rows` over the lengths alone); both are row-for-row
equal to the eager lists, so the loop's index-based order, and a resumed run, see exactly the same
data: the loop's checkpoint (epoch, position in the epoch's order) is a position in the store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from lowres_adapters.data.files import normalize_text
from lowres_adapters.data.text import iter_raw_texts
from lowres_adapters.data.token_cache import tokenizer_fingerprint
from lowres_adapters.io import atomic_directory, atomic_write, atomic_write_json
from lowres_adapters.paths import cache_dir
from lowres_adapters.training.packing import packing_rows

FORMAT_VERSION = 1
BATCH_TEXTS = 1024
Feature = dict[str, list[int]]
TokenizeFn = Callable[[Any, Sequence[str], int], list[Feature]]


def file_digest(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Return the SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_texts(path: str | Path, text_field: str = "text") -> Iterator[str]:
    """Yield the NFC-normalised, non-blank texts of one file, streaming (as ``read_text_file`` reads them)."""
    for _, raw in iter_raw_texts(Path(path), text_field):
        text = normalize_text(raw)
        if text:
            yield text


class TokenCacheFeatures(Sequence):
    """``{"input_ids": [...]}`` features of a token-cache entry, built on access.

    Args:
        ids: ``(tokens,)`` uint32 ids, memory-mapped.
        offsets: ``(examples + 1,)`` int64 start of each example in ``ids``.
    """

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, vocabulary: np.ndarray | None = None, *,
                 entry: Path | None = None, first: int = 0) -> None:
        self.ids, self.offsets, self._vocabulary = ids, offsets, vocabulary
        self.entry, self.first = entry, first  # the cache entry and where these examples start in it

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> Feature:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return {"input_ids": self.ids[self.offsets[index]:self.offsets[index + 1]].tolist()}

    @property
    def example_count(self) -> int:
        """Examples held (one per feature)."""
        return len(self)

    def lengths(self) -> np.ndarray:
        """Return ``(examples,)`` token counts."""
        return np.diff(self.offsets)

    @property
    def token_count(self) -> int:
        """Tokens held."""
        return int(self.offsets[-1] - self.offsets[0])

    def select(self, start: int, stop: int) -> "TokenCacheFeatures":
        """Return examples ``start:stop`` (a view of the same memory map, e.g. a held-out tail)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return TokenCacheFeatures(self.ids, self.offsets[start:max(start, stop) + 1], self._vocabulary,
                                  entry=self.entry, first=self.first + start)

    def unique_ids(self, chunk_tokens: int = 1 << 24) -> np.ndarray:
        """Return every distinct token id of the entry (a view answers for its whole entry: a superset).

        Read from the entry when the tokenising pass recorded it, else by scanning the ids in
        chunks with plain reads, so the scan does not leave the whole file resident in the
        process (a memory map's touched pages count towards its RSS).
        """
        if self._vocabulary is not None:
            return self._vocabulary
        seen = _Vocabulary()
        for chunk in self._id_chunks(chunk_tokens):
            seen.add(chunk)
        return seen.ids()

    def _id_chunks(self, chunk_tokens: int) -> Iterator[np.ndarray]:
        filename = getattr(self.ids, "filename", None)
        if filename is None:
            for start in range(0, len(self.ids), chunk_tokens):
                yield np.asarray(self.ids[start:start + chunk_tokens])
            return
        with open(filename, "rb") as handle:
            while len(chunk := np.fromfile(handle, dtype=np.uint32, count=chunk_tokens)):
                yield chunk

    def packed(self, row_length: int) -> "PackedCacheFeatures":
        """Return the features packed into rows of ``row_length`` tokens, as ``pack_features`` packs them."""
        return PackedCacheFeatures(self, row_length)


class PackedCacheFeatures(Sequence):
    """Packed rows over :class:`TokenCacheFeatures`, equal row by row to ``pack_features(list(features))``.

    The plan (:func:`~lowres_adapters.training.packing.packing_rows`: row offsets and piece indices,
    about 6 bytes per example) is computed once per entry, examples and row length, kept in the
    entry and memory-mapped afterwards; a row's ids are read from the memory map on access.
    """

    def __init__(self, features: TokenCacheFeatures, row_length: int) -> None:
        name = f"plan-{row_length}-{features.first}-{features.first + len(features)}"
        plan = _derived(features.entry, name, lambda: _packing_plan(features, row_length))
        self._row_offsets, self._pieces = plan["rows"], plan["pieces"]
        # (examples,) first piece of each feature, when some feature is longer than a row (else empty)
        self._first_piece = plan["first_piece"] if len(plan["first_piece"]) else None
        self.features, self.row_length = features, row_length

    def __len__(self) -> int:
        return len(self._row_offsets) - 1

    @property
    def example_count(self) -> int:
        """Pieces packed (what ``examples_in`` counts)."""
        return len(self._pieces)

    def __getitem__(self, index: int) -> Feature:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        pieces = np.asarray(self._pieces[self._row_offsets[index]:self._row_offsets[index + 1]], dtype=np.int64)
        if self._first_piece is None:
            feature, start = pieces, np.zeros(len(pieces), dtype=np.int64)
        else:
            feature = np.searchsorted(self._first_piece, pieces, side="right") - 1
            start = (pieces - self._first_piece[feature]) * self.row_length
        offsets = self.features.offsets
        begin = offsets[feature] + start  # (pieces in the row,)
        end = np.minimum(offsets[feature + 1], begin + self.row_length)
        ids = self.features.ids
        return {"input_ids": np.concatenate([ids[b:e] for b, e in zip(begin, end)]).tolist(),
                "segment_lengths": (end - begin).tolist()}


def _packing_plan(features: TokenCacheFeatures, row_length: int) -> dict[str, np.ndarray]:
    """Return the plan of ``features`` in rows of ``row_length``: ``rows``, ``pieces``, ``first_piece``."""
    lengths = features.lengths()  # (examples,)
    first_piece = np.zeros(0, dtype=np.int64)
    if len(lengths) and int(lengths.max()) > row_length:  # split into row-sized pieces
        pieces = np.maximum(1, -(-lengths // row_length))  # (examples,) pieces per feature
        first_piece = np.cumsum(pieces) - pieces
        feature = np.repeat(np.arange(len(lengths)), pieces)  # (pieces,)
        start = (np.arange(len(feature)) - first_piece[feature]) * row_length
        lengths = np.minimum(row_length, lengths[feature] - start)
        del feature, start
    rows, pieces = packing_rows(lengths, row_length)
    return {"rows": rows, "pieces": pieces, "first_piece": first_piece}


def _derived(entry: Path | None, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return arrays derived from a cache entry, memory-mapped from ``<entry>/<name>.<key>.npy`` when an
    earlier run saved them, else computed now and saved (each file written aside and renamed into
    place; ``<name>.json``, listing the keys, last).

    Memory-mapped, they cost neither time nor memory up front: a run touches the pages it reads.
    """
    keys: list[str] = []
    if entry is not None:
        try:
            keys = json.loads((entry / f"{name}.json").read_text(encoding="utf-8"))
            return {key: np.load(entry / f"{name}.{key}.npy", mmap_mode="r") for key in keys}
        except (OSError, ValueError):
            pass
    arrays = compute()
    if entry is None:
        return arrays
    try:
        for key, array in arrays.items():
            with atomic_write(entry / f"{name}.{key}.npy", "wb") as stream:
                np.save(stream, array)
        atomic_write_json(entry / f"{name}.json", list(arrays))
    except OSError:  # a read-only cache: use them without keeping them
        return arrays
    del arrays
    return {key: np.load(entry / f"{name}.{key}.npy", mmap_mode="r") for key in json.loads(
        (entry / f"{name}.json").read_text(encoding="utf-8"))}


class _Vocabulary:
    """The distinct ids of a stream of id chunks."""

    def __init__(self) -> None:
        self.seen = np.zeros(1 << 16, dtype=bool)

    def add(self, chunk: np.ndarray) -> None:
        if len(chunk) and int(chunk.max()) >= len(self.seen):
            self.seen = np.concatenate([self.seen, np.zeros(int(chunk.max()) + 1 - len(self.seen), dtype=bool)])
        self.seen[chunk] = True

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self.seen)


def stream_token_cache(
    source: str | Path | Iterable[str], tokenizer: Any, tokenize_function: TokenizeFn, max_length: int, *,
    source_key: str = "", sha256: str = "", root: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TokenCacheFeatures, bool]:
    """Return ``(features, from_cache)`` of a corpus tokenised in one streaming pass.

    Args:
        source: A text file (hashed by content), or an iterable of texts with ``source_key``
            naming its content (a dataset's name, revision and split, say).
        tokenizer: The tokenizer (part of the key).
        tokenize_function: ``(tokenizer, texts, max_length) -> features`` (the objective's
            tokeniser; blank texts are skipped, as it skips them).
        max_length: Truncation length (part of the key).
        source_key: Required when ``source`` is not a path.
        sha256: The file's SHA-256 when already known (``TextFile.sha256``): the file is not hashed again.
        root: Cache folder (default ``<cache>/tokens``).
        progress: Called as ``progress(examples, tokens)`` after every batch.
    """
    is_file = isinstance(source, (str, Path))
    entry, content, variant = cache_entry(source, tokenizer, tokenize_function, max_length,
                                          source_key=source_key, sha256=sha256, root=root)
    if (entry / "meta.json").exists():
        features = _read(entry)
        if features is not None:
            return features, True
        print(f"note: token cache entry {entry} is damaged; tokenising again", file=sys.stderr)
        shutil.rmtree(entry, ignore_errors=True)
    texts = file_texts(source) if is_file else iter(source)
    remove_abandoned_passes(entry)
    with atomic_directory(entry) as staging:
        examples, tokens = _write(staging, texts, tokenizer, tokenize_function, max_length, progress)
        meta = {"format_version": FORMAT_VERSION, "variant": variant, "content": content,
                "examples": examples, "tokens": tokens}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    features = _read(entry)
    assert features is not None
    return features, False


def cache_entry(source: str | Path | Iterable[str], tokenizer: Any, tokenize_function: TokenizeFn, max_length: int,
                *, source_key: str = "", sha256: str = "", root: Path | None = None,
                layout: str = "stream") -> tuple[Path, str, str]:
    """Return ``(entry folder, content key, variant)`` of a corpus (arguments as :func:`stream_token_cache`;
    ``layout`` names how the entry is laid out, e.g. in segments, and is part of the key)."""
    if not isinstance(source, (str, Path)) and not source_key:
        raise ValueError("an iterable source needs source_key naming its content")
    if isinstance(source, (str, Path)):
        content = f"file:{sha256 or file_digest(source)}"
    else:
        content = f"source:{source_key}"
    variant = f"{getattr(tokenize_function, '__module__', '')}.{tokenize_function.__qualname__}:{max_length}"
    key_text = f"{layout}-v{FORMAT_VERSION}\0{content}\0{variant}\0{tokenizer_fingerprint(tokenizer)}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    return (Path(root) if root is not None else cache_dir() / "tokens") / key, content, variant


def remove_abandoned_passes(entry: Path, idle_seconds: float = 600.0) -> None:
    """Remove the staging folders of this entry (a store entry or one segment of it) left by earlier
    passes that were killed (their ids file unchanged for ``idle_seconds``; a live pass appends to it
    every few seconds)."""
    for staging in entry.parent.glob(f".{entry.name}.*.tmp"):
        ids_file = staging / "ids.bin"
        try:
            idle = time.time() - (ids_file if ids_file.exists() else staging).stat().st_mtime
        except OSError:
            continue
        if idle > idle_seconds:
            print(f"note: removing {staging}, an interrupted tokenising pass", file=sys.stderr)
            shutil.rmtree(staging, ignore_errors=True)


def _write(staging: Path, texts: Iterator[str], tokenizer: Any, tokenize_function: TokenizeFn, max_length: int,
           progress: Callable[[int, int], None] | None) -> tuple[int, int]:
    examples = tokens = 0
    vocabulary = _Vocabulary()
    with open(staging / "ids.bin", "wb") as ids_out, open(staging / "lengths.bin", "wb") as lengths_out:
        while batch := [text for _, text in zip(range(BATCH_TEXTS), texts)]:
            features = tokenize_function(tokenizer, batch, max_length)
            lengths = np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64, count=len(features))
            flat = np.fromiter(itertools.chain.from_iterable(f["input_ids"] for f in features), dtype=np.uint32,
                               count=int(lengths.sum()))
            ids_out.write(flat.tobytes())
            lengths_out.write(lengths.tobytes())
            vocabulary.add(flat)
            examples, tokens = examples + len(features), tokens + len(flat)
            if progress is not None:
                progress(examples, tokens)
    np.save(staging / "vocabulary.npy", vocabulary.ids())
    return examples, tokens


def _read(entry: Path) -> TokenCacheFeatures | None:
    """Return the entry's features, or None when its files disagree with ``meta.json``.

    The example offsets are derived from ``lengths.bin`` once and memory-mapped afterwards, as
    the ids are: opening an entry of any size reads neither.
    """
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        examples, tokens = int(meta["examples"]), int(meta["tokens"])
        if (entry / "ids.bin").stat().st_size != 4 * tokens or (entry / "lengths.bin").stat().st_size != 8 * examples:
            return None
        offsets = _derived(entry, "offsets", lambda: _offsets(entry, tokens))["offsets"]  # (examples + 1,)
        if len(offsets) != examples + 1 or offsets[0] != 0 or offsets[-1] != tokens:
            return None
        ids = np.memmap(entry / "ids.bin", dtype=np.uint32, mode="r", shape=(tokens,)) if tokens else np.zeros(0, np.uint32)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return TokenCacheFeatures(ids, offsets, _read_vocabulary(entry), entry=entry)


def _offsets(entry: Path, tokens: int) -> dict[str, np.ndarray]:
    lengths = np.fromfile(entry / "lengths.bin", dtype=np.int64)
    if int(lengths.sum()) != tokens or (lengths < 0).any():
        raise ValueError("lengths.bin disagrees with meta.json")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return {"offsets": offsets}


def _read_vocabulary(entry: Path) -> np.ndarray | None:
    """Return the distinct ids the tokenising pass recorded (None for an entry written before it did)."""
    try:
        return np.load(entry / "vocabulary.npy")
    except (OSError, ValueError):
        return None
