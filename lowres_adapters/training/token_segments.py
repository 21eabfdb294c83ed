"""A text file's token store built segment by segment in the background, so training starts on the first.

The file is cut into segments at line ends: segment ``k`` holds the texts that follow segment
``k - 1`` until their characters reach :func:`segment_chars` ``(k)`` (4 M characters for the
first, doubling up to 64 M), so the cut is a pure function of the file. Each segment is a
token-store entry of its own, ``<cache>/tokens/<key>/segment-00000/`` (the files
:mod:`~lowres_adapters.training.token_store` writes), written aside and renamed into place; its
``meta.json`` also records where the segment ends in the file (line, byte offset of the
decompressed text) and whether it is the last.

:class:`SegmentedStore` tokenises the first segment when it is opened, then the missing ones in
file order in a background child process (niced below the training, so it takes the CPU the
training leaves; no GIL shared with it), and :meth:`SegmentedStore.segment` hands segment ``k`` to
whoever waits for it, from disk. Finished segments outlive the process: a later run tokenises only
what is still missing. Only the main process of a multi-process run tokenises; the others wait
for the segments to appear on disk.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from lowres_adapters.data.positioned_texts import PositionedTexts
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_directory
from lowres_adapters.training.token_store import (
    FORMAT_VERSION,
    TokenCacheFeatures,
    TokenizeFn,
    _read,
    _write,
    cache_entry,
    remove_abandoned_passes,
)

FIRST_SEGMENT_CHARS = 4_000_000
"""Characters of text in the first segment; segment ``k`` holds ``FIRST_SEGMENT_CHARS << min(k, 4)``."""
POLL_SECONDS = 0.2
BACKGROUND = "process"
"""Where the pass after the first segment runs: ``"process"`` (a child Python process below the
training's CPU priority, no GIL shared) or ``"thread"`` (tests hold a thread's pass back)."""
_OPEN_STORES: "set[SegmentedStore]" = set()


def segment_chars(index: int, first: int | None = None) -> int:
    """Return how many characters of text segment ``index`` holds (its last line may pass it)."""
    return (first or FIRST_SEGMENT_CHARS) << min(index, 4)


class _StopPass(Exception):
    """Raised inside the background pass when its store is closed."""


@dataclass(frozen=True)
class _SegmentPass:
    """Tokenise the segments of a file that are not on disk yet, in file order (picklable: it runs in
    a child process)."""

    path: Path
    tokenizer: Any
    tokenize_function: TokenizeFn
    max_length: int
    entry: Path
    first_chars: int
    content: str
    variant: str
    report: bool = False

    def segment_dir(self, index: int) -> Path:
        return self.entry / f"segment-{index:05d}"

    def run(self, stop: Any, stop_after: int | None = None) -> None:
        """Write the missing segments (the first ``stop_after`` only, when given) until the last one
        or until ``stop`` (an Event) is set; raises :class:`_StopPass` when stopped."""
        reader = PositionedTexts(self.path)
        started = last_report = time.monotonic()
        try:
            index = 0
            while stop_after is None or index < stop_after:
                meta = _segment_meta(self.segment_dir(index))
                if meta is not None and _read(self.segment_dir(index)) is not None:
                    reader.skip_to(int(meta["end_line"]), int(meta["end_offset"]))
                else:
                    meta = self._write_segment(index, reader, stop)
                    if self.report and time.monotonic() - last_report >= 30.0:
                        last_report = time.monotonic()
                        print(f"tokenising {self.path.name} in the background: segment {index + 1} done "
                              f"({meta['end_offset'] / 2**20:,.1f} MB of text, {last_report - started:.0f} s)",
                              file=sys.stderr, flush=True)
                if meta.get("last"):
                    return
                index += 1
        finally:
            reader.close()

    def _write_segment(self, index: int, reader: PositionedTexts, stop: Any) -> dict[str, Any]:
        budget, end = segment_chars(index, self.first_chars), [0, 0]

        def texts() -> Iterator[str]:
            nonlocal budget
            while budget > 0 and (found := reader.take()) is not None:
                if stop.is_set():
                    raise _StopPass
                end[:] = found[:2]
                budget -= len(found[2])
                yield found[2]

        remove_abandoned_passes(self.segment_dir(index))
        with atomic_directory(self.segment_dir(index)) as staging:
            examples, tokens = _write(staging, texts(), self.tokenizer, self.tokenize_function, self.max_length, None)
            meta = {"format_version": FORMAT_VERSION, "variant": self.variant, "content": self.content,
                    "segment": index, "examples": examples, "tokens": tokens, "end_line": end[0],
                    "end_offset": end[1], "last": reader.peek() is None}
            (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return meta


class _ChildStop:
    """``is_set()`` once the parent asked this process to stop: SIGTERM, or its stdin closed (the parent
    exited)."""

    def __init__(self, stream: Any, every: int = 256) -> None:
        self._stream, self._every, self._calls, self._stopped = stream, every, 0, False
        signal.signal(signal.SIGTERM, lambda *_: self.set())

    def set(self) -> None:
        self._stopped = True

    def is_set(self) -> bool:
        self._calls += 1
        if not self._stopped and self._calls % self._every == 0:
            readable, _, _ = select.select([self._stream], [], [], 0)
            self._stopped = bool(readable) and not self._stream.read1(1)
        return self._stopped


def child_main() -> None:
    """Run the pass pickled on stdin, niced below the training, until it ends or the parent stops it.

    A failure is written to stdout (one line) for the parent, with exit code 1.
    """
    try:
        os.nice(10)
    except OSError:
        pass
    stdin = sys.stdin.buffer
    segment_pass = pickle.load(stdin)
    try:
        segment_pass.run(_ChildStop(stdin))
    except _StopPass:
        return
    except BaseException as error:  # handed to the parent when it waits for a segment
        sys.stdout.write(str(error))
        sys.stdout.flush()
        raise SystemExit(1) from None


class _ChildPass:
    """The background pass in a child Python process (started with ``python -c``, so the parent's
    main module is not imported again, as ``multiprocessing``'s spawn would); closing its stdin stops it."""

    def __init__(self, segment_pass: _SegmentPass) -> None:
        command = "from lowres_adapters.training.token_segments import child_main; child_main()"
        self._process = subprocess.Popen([sys.executable, "-c", command], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)
        self._error: str | None = None
        payload = pickle.dumps(segment_pass)
        # written by a thread: the pipe takes 64 KB until the child, still importing, reads the rest
        threading.Thread(target=self._feed, args=(payload,), name="tokenising pass input", daemon=True).start()

    def _feed(self, payload: bytes) -> None:
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(payload)
            self._process.stdin.flush()
        except (OSError, ValueError):  # the child ended, or the parent closed the pipe to stop it
            pass

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def error(self) -> str:
        """Return what the pass failed with (empty while it runs or when it did not fail)."""
        if self._process.poll() in (None, 0) or self._process.stdout is None:
            return ""
        if self._error is None:
            self._error = self._process.stdout.read().decode("utf-8", errors="replace").strip() or (
                f"the tokenising pass exited with code {self._process.returncode}")
        return self._error

    def stop(self, timeout: float) -> None:
        """Ask the pass to stop (its unfinished segment is discarded) and wait up to ``timeout`` seconds:
        a pass starved of CPU by the training finishes stopping on its own."""
        try:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.terminate()  # SIGTERM: the pass stops at its next text
        except OSError:
            pass
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


class SegmentedStore:
    """The segments of one file's token store: the first tokenised before this returns, the rest
    in a background process (or thread) as the run goes.

    Args:
        path: The text file (``.txt``/``.jsonl``, ``.gz`` or not), already checked.
        tokenizer: The tokenizer (part of the key).
        tokenize_function: ``(tokenizer, texts, max_length) -> features``.
        max_length: Truncation length (part of the key).
        sha256: The file's SHA-256 when already known.
        root: Cache folder (default ``<cache>/tokens``).
        tokenise: Tokenise here (False in the processes other than the main one: they wait for the
            segments on disk).
        first_segment_chars: Characters of the first segment (default :data:`FIRST_SEGMENT_CHARS`).
        report: Print a line to stderr after a segment is written (at most every 30 s).
    """

    def __init__(self, path: str | Path, tokenizer: Any, tokenize_function: TokenizeFn, max_length: int, *,
                 sha256: str = "", root: Path | None = None, tokenise: bool = True,
                 first_segment_chars: int | None = None, report: bool = False) -> None:
        self.path = Path(path)
        first_chars = first_segment_chars or FIRST_SEGMENT_CHARS
        self.entry, self.content, self.variant = cache_entry(
            self.path, tokenizer, tokenize_function, max_length, sha256=sha256, root=root,
            layout=f"segments-{first_chars}")
        self._pass = _SegmentPass(self.path, tokenizer, tokenize_function, max_length, self.entry, first_chars,
                                  self.content, self.variant, report)
        self._segments: list[TokenCacheFeatures] = []
        self._count: int | None = None  # segments in the file, once the last one is known
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._worker: threading.Thread | _ChildPass | None = None
        self._tokenise = tokenise
        self.from_cache = self._known_segments() is not None
        if tokenise and not self.from_cache:
            self._start_pass()

    def _start_pass(self) -> None:
        """Tokenise the first segment now (training needs it first), the rest in the background."""
        if _segment_meta(self.segment_dir(0)) is None:
            self._pass.run(self._stop, stop_after=1)
        if self._known_segments() is not None:
            return
        _OPEN_STORES.add(self)
        if BACKGROUND == "process":
            self._worker = _ChildPass(self._pass)
        else:
            self._worker = threading.Thread(target=self._run_in_thread, name=f"tokenising {self.path.name}",
                                            daemon=True)
            self._worker.start()

    def _run_in_thread(self) -> None:
        try:
            self._pass.run(self._stop)
        except _StopPass:
            return
        except BaseException as error:  # handed to the training thread when it waits for a segment
            self._error = error

    # ----------------------------------------------------------------- reading
    def segment_dir(self, index: int) -> Path:
        """Return the folder of segment ``index``."""
        return self._pass.segment_dir(index)

    @property
    def count(self) -> int | None:
        """Segments in the file, or None while the pass has not reached the last one."""
        return self._count

    @property
    def complete(self) -> bool:
        """Whether every segment is on disk."""
        return self._known_segments() is not None

    def segment(self, index: int) -> TokenCacheFeatures | None:
        """Return segment ``index``, waiting for the pass to write it; None past the last segment."""
        while len(self._segments) <= index:
            if self._count is not None and len(self._segments) >= self._count:
                return None
            if self._load(len(self._segments)) is None:
                self._check_worker()
                time.sleep(POLL_SECONDS)
        return self._segments[index]

    def _check_worker(self) -> None:
        """Raise what stopped the background pass, if it stopped; restart it for a damaged segment."""
        if self._error is not None:
            raise self._error
        if not self._tokenise:
            return  # another process tokenises
        if self._worker is None:  # a damaged segment of a reused store
            self._start_pass()
        elif not self._worker.is_alive() and self._load(len(self._segments)) is None:
            if isinstance(self._worker, _ChildPass) and self._worker.error():
                raise LowresError(self._worker.error())
            raise LowresError(f"the tokenising pass of {self.path} stopped before segment {len(self._segments) + 1}")

    def _load(self, index: int) -> TokenCacheFeatures | None:
        meta = _segment_meta(self.segment_dir(index))
        if meta is None:
            return None
        features = _read(self.segment_dir(index))
        if features is None:
            return None
        self._segments.append(features)
        if meta.get("last"):
            self._count = index + 1
        return features

    def _known_segments(self) -> int | None:
        """Return the number of segments when all are on disk already (else None)."""
        index = 0
        while (meta := _segment_meta(self.segment_dir(index))) is not None:
            if meta.get("last"):
                return index + 1
            index += 1
        return None

    def close(self, timeout: float = 60.0) -> None:
        """Stop the background pass (the segment it was writing is discarded), waiting for a child
        process up to ``timeout`` seconds."""
        self._stop.set()
        if isinstance(self._worker, _ChildPass):
            self._worker.stop(timeout)
        elif self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        _OPEN_STORES.discard(self)


def _segment_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@atexit.register
def close_open_stores() -> None:
    """Stop every background pass of this process (at exit: its unfinished segment is discarded)."""
    for store in list(_OPEN_STORES):
        store.close(timeout=5.0)
