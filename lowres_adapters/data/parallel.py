"""Parallel text: TSV, JSONL or two aligned (Moses-style) files -> :class:`PairExample`, streaming.

Pairs keep their ids (an explicit id column/field, else ``file:line``) through every filter, so a
pair can always be traced back to its source line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterator

from lowres_adapters.data.examples import PairExample, Provenance
from lowres_adapters.data.files import iter_lines, normalize_text
from lowres_adapters.data.languages import validate_language
from lowres_adapters.errors import InputError, LowresError

FORMATS = ("auto", "tsv", "jsonl", "moses")
RawPair = tuple[str, str, str]  # (id, source, target)


@dataclass(frozen=True)
class ParallelSourceConfig:
    """Settings of the ``parallel`` data source.

    Attributes:
        path: A TSV (``source<TAB>target`` or ``id<TAB>source<TAB>target``), a JSONL file, or
            the source side of a Moses-style pair of files.
        target_path: The target side of a Moses-style pair (same number of lines as ``path``).
        format: ``"auto"`` (by suffix and ``target_path``), ``"tsv"``, ``"jsonl"`` or ``"moses"``.
        source_lang: ISO 639-3 code of the source side.
        target_lang: ISO 639-3 code of the target side.
        source_field: JSONL field of the source text (falls back to the ``source_lang`` key).
        target_field: JSONL field of the target text (falls back to the ``target_lang`` key).
        min_chars: Drop pairs with a side shorter than this.
        max_chars: Drop pairs with a side longer than this (0: no limit).
        max_length_ratio: Drop pairs whose longer side has more than this many times the
            characters of the shorter (0: no ratio filter).
        dedup: Drop pairs equal to an earlier pair.
        source_name: Provenance name of the corpus (defaults to the file name).
        licence: Licence recorded in the provenance.
    """

    path: str = ""
    target_path: str = ""
    format: str = "auto"
    source_lang: str = ""
    target_lang: str = ""
    source_field: str = "source"
    target_field: str = "target"
    min_chars: int = 1
    max_chars: int = 0
    max_length_ratio: float = 3.0
    dedup: bool = True
    source_name: str = ""
    licence: str = "unknown"

    def __post_init__(self) -> None:
        for code in (self.source_lang, self.target_lang):
            if code:
                validate_language(code)
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.max_length_ratio < 0 or self.min_chars < 0 or self.max_chars < 0:
            raise ValueError("max_length_ratio, min_chars and max_chars must be >= 0")


def resolve_format(config: ParallelSourceConfig) -> str:
    """Return the concrete format of ``config`` (``tsv``, ``jsonl`` or ``moses``)."""
    if config.format != "auto":
        return config.format
    if config.target_path:
        return "moses"
    return "jsonl" if config.path.endswith((".jsonl", ".jsonl.gz")) else "tsv"


def iter_tsv(path: Path) -> Iterator[RawPair]:
    """Yield ``(id, source, target)`` from a 2- or 3-column TSV; every line must have as many.

    Raises:
        InputError: On a line whose column count differs from 2/3 or from the first line's.
    """
    columns = 0
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if columns == 0:
            if len(cells) not in (2, 3):
                raise InputError(path, line_number, "expected 2 tab-separated columns (source, target) "
                                 f"or 3 (id, source, target), found {len(cells)}")
            columns = len(cells)
        elif len(cells) != columns:
            raise InputError(path, line_number, f"expected {columns} tab-separated columns, found {len(cells)}")
        if columns == 3:
            yield cells[0], cells[1], cells[2]
        else:
            yield f"{path.name}:{line_number}", cells[0], cells[1]


def iter_jsonl(path: Path, source_key: str, target_key: str,
               fallback_keys: tuple[str, str] = ("", "")) -> Iterator[RawPair]:
    """Yield ``(id, source, target)`` from JSON objects with string source and target fields."""
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(path, line_number, f"expected one JSON object per line ({error.msg})") from None
        keys = []
        for key, fallback in zip((source_key, target_key), fallback_keys):
            chosen = key if isinstance(row, dict) and key in row else fallback
            if not isinstance(row, dict) or not isinstance(row.get(chosen), str):
                raise InputError(path, line_number, f"expected a JSON object with string fields "
                                 f"{source_key!r} and {target_key!r}")
            keys.append(chosen)
        yield str(row.get("id", f"{path.name}:{line_number}")), row[keys[0]], row[keys[1]]


def iter_moses(source_path: Path, target_path: Path) -> Iterator[RawPair]:
    """Yield ``(id, source, target)`` from two files aligned line by line.

    Raises:
        InputError: When the files have different numbers of lines.
    """
    source_lines = iter_lines(source_path, allow_empty=True)
    target_lines = iter_lines(target_path, allow_empty=True)
    count = 0
    for source, target in zip_longest(source_lines, target_lines):
        if source is None or target is None:
            longer, shorter = (target_path, source_path) if source is None else (source_path, target_path)
            total = count + 1 + sum(1 for _ in (target_lines if source is None else source_lines))
            raise InputError(longer, count + 1, f"expected as many lines as {shorter} ({count}), found {total}")
        count += 1
        if source[1].strip() or target[1].strip():
            yield f"{source_path.name}:{source[0]}", source[1], target[1]
    if count == 0:
        raise InputError(source_path, 1, "expected at least one line of text, found an empty file")


def iter_raw_pairs(config: ParallelSourceConfig) -> Iterator[RawPair]:
    """Yield ``(id, source, target)`` from the file(s) of ``config``, unfiltered."""
    if not config.path:
        raise LowresError("the parallel source needs path=FILE (and target_path=FILE for Moses-style files)")
    path = Path(config.path)
    kind = resolve_format(config)
    if kind == "moses":
        if not config.target_path:
            raise LowresError("the moses format needs target_path=FILE")
        return iter_moses(path, Path(config.target_path))
    if kind == "jsonl":
        return iter_jsonl(path, config.source_field, config.target_field, (config.source_lang, config.target_lang))
    return iter_tsv(path)


def keep_pair(source: str, target: str, config: ParallelSourceConfig) -> bool:
    """Return whether a pair passes the length and length-ratio filters of ``config``."""
    shorter, longer = sorted((len(source), len(target)))
    if shorter < max(config.min_chars, 1):
        return False
    if config.max_chars and longer > config.max_chars:
        return False
    return not (config.max_length_ratio and longer > config.max_length_ratio * shorter)


def open_parallel(config: ParallelSourceConfig) -> Iterator[PairExample]:
    """Stream the cleaned and filtered pairs of ``config``, ids kept."""
    if not (config.source_lang and config.target_lang):
        raise LowresError("the parallel source needs source_lang=... and target_lang=... (ISO 639-3)")
    provenance = Provenance(config.source_name or Path(config.path).name, config.licence, detail=config.path)
    seen: set[tuple[str, str]] = set()
    for pair_id, raw_source, raw_target in iter_raw_pairs(config):
        source, target = normalize_text(raw_source), normalize_text(raw_target)
        if not keep_pair(source, target, config):
            continue
        if config.dedup:
            if (source, target) in seen:
                continue
            seen.add((source, target))
        yield PairExample(source=source, target=target, source_lang=config.source_lang,
                          target_lang=config.target_lang, id=pair_id, provenance=provenance)


def read_pairs_file(path: str | Path, source_lang: str, target_lang: str,
                    target_path: str | Path | None = None) -> list[PairExample]:
    """Read a user's parallel file (TSV or JSONL, or two Moses files) into pairs, unfiltered.

    Raises:
        InputError: On a bad file, or a pair with an empty side.
        LowresError: On an unknown language code.
    """
    validate_language(source_lang)
    validate_language(target_lang)
    config = ParallelSourceConfig(path=str(path), target_path=str(target_path or ""),
                                  source_lang=source_lang, target_lang=target_lang)
    provenance = Provenance(Path(path).name, "user", detail=str(path))
    pairs = []
    for pair_id, raw_source, raw_target in iter_raw_pairs(config):
        source, target = normalize_text(raw_source), normalize_text(raw_target)
        if not (source and target):
            raise InputError(path, _line_of(pair_id), "expected non-empty source and target texts")
        pairs.append(PairExample(source=source, target=target, source_lang=source_lang,
                                 target_lang=target_lang, id=pair_id, provenance=provenance))
    if not pairs:
        raise InputError(path, 1, "expected at least one pair of texts, found none")
    return pairs


def _line_of(pair_id: str) -> int | None:
    tail = pair_id.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None
