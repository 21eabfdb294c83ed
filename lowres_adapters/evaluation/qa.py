"""SQuAD-style exact match and token F1 for extractive question answering.

The normalisation is the official SQuAD v1.1 script's: lower-case, drop punctuation, drop the
English articles ``a``/``an``/``the``, collapse whitespace. Each prediction is scored against its
best-matching gold answer; figures are percentages averaged over questions.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

from lowres_adapters.errors import LowresError

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Return ``text`` lower-cased, without punctuation, articles and extra whitespace."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """Return 1.0 when the normalised prediction equals the normalised gold answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Return the F1 of the bag of normalised tokens of ``prediction`` against ``gold``."""
    predicted_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not predicted_tokens or not gold_tokens:
        return float(predicted_tokens == gold_tokens)
    common = Counter(predicted_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_scores(predictions: Sequence[str], gold_answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Return ``{"exact_match", "f1", "examples"}`` in percent, each question against its best gold answer."""
    if len(predictions) != len(gold_answers):
        raise LowresError(f"{len(predictions)} predictions for {len(gold_answers)} questions")
    if not predictions:
        raise LowresError("nothing to score: no questions")
    for index, answers in enumerate(gold_answers):
        if not answers:
            raise LowresError(f"question {index} has no gold answer")
    exact = sum(max(exact_match(p, gold) for gold in answers) for p, answers in zip(predictions, gold_answers))
    f1 = sum(max(token_f1(p, gold) for gold in answers) for p, answers in zip(predictions, gold_answers))
    return {"exact_match": 100.0 * exact / len(predictions), "f1": 100.0 * f1 / len(predictions),
            "examples": len(predictions)}
