"""Cache of the base model's held-out figures, so a repeated run does not score the base again.

Only models with a pinned revision (the embedded default) are cached: a local folder or a Hub id
without a revision may change under the same name. The key covers the model and its revision,
what was computed and how (for a recipe's figures: the recipe and its options) and the held-out
texts themselves. The base model's language-modelling scores of held-out texts have one entry
that ``lowres adapt`` and ``lowres evaluate`` share (:func:`held_out_parts`): it depends on the
model, its revision and weight precision, the objective, the scoring length and the texts only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

from lowres_adapters.io import atomic_write_text
from lowres_adapters.models import model_revision
from lowres_adapters.paths import cache_dir


HELD_OUT_SCORES = "held-out scores"
"""What the shared entry of the base model's held-out language-modelling scores is called."""


def held_out_parts(objective: str, max_length: int, weights: str | None = None) -> dict[str, Any]:
    """Return the key parts of the base model's held-out language-modelling scores (shared by adapt and evaluate).

    Args:
        objective: ``"clm"`` or ``"mlm"``.
        max_length: Longest scored window in tokens.
        weights: The weights' dtype when not float32 (a base loaded in bf16 scores differently).
    """
    parts: dict[str, Any] = {"what": HELD_OUT_SCORES, "objective": objective, "max_length": max_length}
    if weights is not None:
        parts["weights"] = weights
    return parts


def cache_key(model_id: str, revision: str, parts: Mapping[str, Any], texts: list[str]) -> str:
    """Return the hex digest naming one base-model scoring."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"model": model_id, "revision": revision, **parts}, sort_keys=True,
                             default=str).encode("utf-8"))
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8"))
    return digest.hexdigest()


def cached_base_scores(model_id: str, parts: Mapping[str, Any], texts: list[str],
                       score: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Return the base model's figures from the cache, or ``score()`` them and store them."""
    revision = model_revision(model_id)
    if revision is None:
        return score()
    path = Path(cache_dir()) / "base-scores" / f"{cache_key(model_id, revision, parts, texts)}.json"
    if path.exists():
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            pass  # a damaged entry is scored again and replaced
    figures = score()
    atomic_write_text(path, json.dumps(figures, sort_keys=True) + "\n")
    return figures
