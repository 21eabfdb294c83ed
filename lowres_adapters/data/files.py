"""Read users' and corpora's files line by line, with one-line errors naming file and line.

Everything streams: a 1 GB ``.txt.gz`` is read one line at a time. Bad input raises
:class:`~lowres_adapters.errors.InputError` (``path:line: expected ...``): invalid UTF-8, a
truncated or corrupt ``.gz``, an empty file, a missing path.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import unicodedata
import zlib
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from lowres_adapters.errors import InputError
from lowres_adapters.io import atomic_write_json
from lowres_adapters.paths import cache_dir

GZIP_SUFFIX = ".gz"


def normalize_text(text: str) -> str:
    """Return ``text`` in Unicode NFC with runs of whitespace collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise InputError(path, None, "expected an existing file (no such file or folder)")
    if path.is_dir():
        raise InputError(path, None, "expected a file, found a folder")
    if path.name.endswith(GZIP_SUFFIX):
        return gzip.open(path, "rb")
    return path.open("rb")


def iter_lines(path: str | Path, allow_empty: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for each line of a UTF-8 text file, ``.gz`` or not.

    Line endings and a leading byte-order mark are removed; lines are not otherwise changed.

    Args:
        path: A ``.txt``/``.tsv``/``.jsonl``/... file, optionally gzip-compressed (``.gz``).
        allow_empty: Accept a file with no non-blank line instead of raising.

    Raises:
        InputError: On a missing file, invalid UTF-8, a truncated or corrupt ``.gz``, or an
            empty file (unless ``allow_empty``).
    """
    path = Path(path)
    seen_text = False
    line_number = 0
    with _open_binary(path) as handle:
        try:
            for line_number, raw in enumerate(handle, start=1):
                line = _decode(path, line_number, raw)
                if line_number == 1:
                    line = line.lstrip("\ufeff")
                seen_text = seen_text or bool(line.strip())
                yield line_number, line
        except EOFError:
            raise InputError(path, line_number + 1,
                             "expected more gzip data (the .gz file is truncated)") from None
        except (gzip.BadGzipFile, zlib.error) as error:
            raise InputError(path, line_number + 1, f"expected valid gzip data ({error})") from None
    if not seen_text and not allow_empty:
        raise InputError(path, 1, "expected at least one line of text, found an empty file")


def check_text_file(path: str | Path, chunk_bytes: int = 1 << 24) -> str:
    """Check that a text file (``.gz`` or not) is UTF-8 with some text in it, reading it in large
    chunks, and return the SHA-256 of its bytes as stored (of the ``.gz`` for one).

    A 1 GB file takes seconds: chunks are decoded whole, and only a bad file is read again line
    by line, to name the line.

    Raises:
        InputError: As :func:`iter_lines` raises it (file, line, what was expected).
    """
    path = Path(path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    seen_text = False
    try:
        with _open_binary(path) as handle:  # the text (through gzip for a .gz)
            while chunk := handle.read(chunk_bytes):
                if not path.name.endswith(GZIP_SUFFIX):
                    digest.update(chunk)
                text = decoder.decode(chunk)
                seen_text = seen_text or bool(text.lstrip("\ufeff").strip())
            decoder.decode(b"", final=True)
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        for _ in iter_lines(path):  # read it again line by line: the error names the line
            pass
        raise InputError(path, None, f"expected UTF-8 text ({error})") from None
    if not seen_text:
        for _ in iter_lines(path):  # raises: the file has no line of text
            pass
    if path.name.endswith(GZIP_SUFFIX):
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_bytes):
                digest.update(chunk)
    return digest.hexdigest()


def checked_text_file(path: str | Path, check_lines: Callable[[Path], None] | None = None) -> str:
    """Return :func:`check_text_file`'s digest, remembered by the file's identity (resolved path,
    size, modification time, inode) under ``<cache>/checked-files/``: an unchanged file that passed
    the check once is not read again (a 1 GB file: ~10 s saved per run).

    Args:
        path: The file.
        check_lines: A further check of the lines (a JSONL file's objects, say), run with the first
            one and remembered with it; raises :class:`InputError`.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return check_text_file(path)  # the one-line error of a missing file
    identity = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}"
    memo = cache_dir() / "checked-files" / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"
    try:
        return str(json.loads(memo.read_text(encoding="utf-8"))["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = check_text_file(path)
    if check_lines is not None:
        check_lines(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(memo, {"path": str(path.resolve()), "sha256": digest})
    except OSError:
        pass  # a read-only cache: checked again next time
    return digest


def _decode(path: Path, line_number: int, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        column = len(raw[: error.start].decode("utf-8", errors="replace")) + 1
        raise InputError(
            path, line_number,
            f"expected UTF-8 text, found invalid byte 0x{raw[error.start]:02x} at column {column}",
        ) from None
    return text.rstrip("\r\n")


def iter_files(path: str | Path, suffixes: Iterable[str]) -> Iterator[Path]:
    """Yield ``path`` itself, or every file under a folder whose name ends in one of ``suffixes``.

    Files in a folder come in sorted order so that reading is deterministic.

    Raises:
        InputError: When ``path`` does not exist or a folder holds no matching file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "expected an existing file or folder (no such path)")
    if not path.is_dir():
        yield path
        return
    suffixes = tuple(suffixes)
    found = False
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        if child.name.endswith(suffixes) and not child.name.startswith("."):
            found = True
            yield child
    if not found:
        raise InputError(path, None, f"expected files ending in {', '.join(suffixes)} in this folder")
