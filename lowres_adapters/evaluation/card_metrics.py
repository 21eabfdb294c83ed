"""Turn evaluation figures into the model card's ``model-index`` metrics."""

from __future__ import annotations

from typing import Any, Mapping

METRIC_NAMES = {
    "bits_per_char": "Bits per character",
    "bits_per_byte": "Bits per byte",
    "perplexity": "Perplexity",
    "pseudo_perplexity": "Pseudo-perplexity",
    "bleu": "BLEU",
    "chrf": "chrF",
    "chrf_pp": "chrF++",
    "accuracy": "Accuracy",
    "macro_f1": "Macro-F1",
    "entity_f1": "Entity F1 (seqeval)",
    "exact_match": "Exact match",
    "f1": "F1",
}
"""Figures a model card reports, with their display names; counts and raw totals are left out."""


def metrics_for_card(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the adapted model's figures as ``[{"name", "type", "value"}]`` for ``model-index``.

    Args:
        metrics: ``metrics.json`` or :func:`~lowres_adapters.runs.evaluate.evaluate_run` output:
            ``{"adapted": {"bits_per_char": ..., "chrf": ..., ...}, "translation_direction": ...}``.

    Returns:
        One entry per known figure of the ``adapted`` block, in :data:`METRIC_NAMES` order, values
        rounded to 4 decimals. ``type`` is the metric key (e.g. ``"chrf_pp"``).
    """
    adapted = metrics.get("adapted") or {}
    direction = metrics.get("translation_direction")
    entries = []
    for key, label in METRIC_NAMES.items():
        value = adapted.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key in ("bleu", "chrf", "chrf_pp") and direction:
            label = f"{label} {direction}"
        entries.append({"name": label, "type": key, "value": round(float(value), 4)})
    return entries
