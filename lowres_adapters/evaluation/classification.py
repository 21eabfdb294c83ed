"""Classification metrics: accuracy and macro-F1 for labels, seqeval entity F1 for BIO tags."""

from __future__ import annotations

from typing import Any, Hashable, Sequence

from seqeval.metrics import f1_score, precision_score, recall_score

from lowres_adapters.errors import LowresError


def _check_lengths(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise LowresError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise LowresError("nothing to score: no references")


def accuracy(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> float:
    """Return the share of predictions equal to their reference, in percent."""
    _check_lengths(predictions, references)
    correct = sum(prediction == reference for prediction, reference in zip(predictions, references))
    return 100.0 * correct / len(references)


def macro_f1(predictions: Sequence[Hashable], references: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float:
    """Return the unweighted mean over classes of the per-class F1, in percent.

    Args:
        predictions: Predicted class per example.
        references: Gold class per example.
        labels: Classes to average over; by default every class seen in references or predictions.
            A class never predicted and never gold has F1 0 when listed explicitly.
    """
    _check_lengths(predictions, references)
    classes = list(labels) if labels is not None else sorted(set(references) | set(predictions), key=str)
    scores = []
    for label in classes:
        true_positive = sum(p == label and r == label for p, r in zip(predictions, references))
        predicted = sum(p == label for p in predictions)
        gold = sum(r == label for r in references)
        denominator = predicted + gold
        scores.append(2.0 * true_positive / denominator if denominator else 0.0)
    return 100.0 * sum(scores) / len(scores)


def classification_scores(predictions: Sequence[Hashable], references: Sequence[Hashable],
                          labels: Sequence[Hashable] | None = None) -> dict[str, float]:
    """Return ``{"accuracy", "macro_f1", "examples"}`` for sequence classification."""
    return {"accuracy": accuracy(predictions, references),
            "macro_f1": macro_f1(predictions, references, labels),
            "examples": len(references)}


def entity_scores(predicted_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Return seqeval's entity-level precision, recall and F1 (percent) for BIO-tagged sentences."""
    _check_lengths(predicted_tags, gold_tags)
    for index, (predicted, gold) in enumerate(zip(predicted_tags, gold_tags)):
        if len(predicted) != len(gold):
            raise LowresError(f"sentence {index}: {len(predicted)} predicted tags for {len(gold)} words")
    gold_lists = [list(tags) for tags in gold_tags]
    predicted_lists = [list(tags) for tags in predicted_tags]
    return {"entity_precision": 100.0 * precision_score(gold_lists, predicted_lists),
            "entity_recall": 100.0 * recall_score(gold_lists, predicted_lists),
            "entity_f1": 100.0 * f1_score(gold_lists, predicted_lists),
            "examples": len(gold_lists)}
