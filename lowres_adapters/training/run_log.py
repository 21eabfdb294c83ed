"""The run's metrics log: ``train_log.jsonl``, one JSON object per line.

Events: ``start`` (sizes, trainable count), ``train`` (step, loss, lr, tokens, tokens_per_s,
elapsed_s), ``eval`` (step, eval_loss, best_eval_loss, best_step), ``end``. On resume the lines
after the checkpoint's step are dropped, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from lowres_adapters.io import atomic_write_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLog:
    """Append JSON lines to a log file (or nowhere when ``path`` is None).

    Args:
        path: The ``train_log.jsonl`` file, or None to log nothing (non-main processes).
        keep_until_step: On resume, the checkpoint's step: existing lines of later steps are
            dropped; None starts a new log (an existing file is replaced).
    """

    def __init__(self, path: Path | None, keep_until_step: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is None:
            return
        kept: list[str] = []
        if keep_until_step is not None and self.path.exists():
            for line in self.path.read_text("utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash
                    continue
                if record.get("step", 0) <= keep_until_step and record.get("event") != "end":
                    kept.append(line)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (non-finite floats become null)."""
        if self.path is None:
            return
        line = json.dumps({key: _jsonable(value) for key, value in record.items()})
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")
            stream.flush()


def read_log(path: Path) -> list[dict[str, Any]]:
    """Return the records of a ``train_log.jsonl`` file (skipping a truncated last line)."""
    records = []
    for line in Path(path).read_text("utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
