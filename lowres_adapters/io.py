"""Writes that a reader never sees half done: a temporary name next to the target, then a rename.

``atomic_path`` is the one place that does it; the other helpers here are written on top of it.
A rename within one folder is atomic on POSIX and Windows, so a crash, an error or Ctrl-C leaves
either the old file or the new one, never a mixture, and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix, so writers that pick a format from the name
    (matplotlib, numpy) work unchanged. On any error the temporary file is deleted and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a stream (text is UTF-8) whose content replaces ``path`` only when the block succeeds."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding) as stream:
        yield stream


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path) as stream:
        stream.write(text)


def atomic_write_json(path: Path | str, value: Any, **dump_options: Any) -> None:
    """Write ``value`` as JSON followed by a newline, atomically; ``dump_options`` go to :func:`json.dump`."""
    with atomic_write(path) as stream:
        json.dump(value, stream, **dump_options)
        stream.write("\n")


@contextlib.contextmanager
def atomic_directory(final: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``final`` only when the block succeeds.

    An existing ``final`` is swapped out and removed after the new folder is in place; on any
    error the temporary folder is deleted and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield temporary
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(final, old)
        os.replace(temporary, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
