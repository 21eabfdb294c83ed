"""Classification, NER, QA and seed statistics on fixed, hand-checked inputs."""

from __future__ import annotations

import math

import pytest
from seqeval.metrics import f1_score as seqeval_f1

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.classification import accuracy, classification_scores, entity_scores, macro_f1
from lowres_adapters.evaluation.qa import normalize_answer, qa_scores, token_f1
from lowres_adapters.evaluation.stats import mean_std, summarize_runs


def test_accuracy_and_macro_f1_by_hand():
    references = ["a", "a", "a", "b", "b", "c"]
    predictions = ["a", "a", "b", "b", "c", "c"]
    # a: tp 2, pred 2, gold 3 -> 4/5; b: tp 1, pred 2, gold 2 -> 1/2; c: tp 1, pred 2, gold 1 -> 2/3
    assert accuracy(predictions, references) == pytest.approx(400 / 6)
    assert macro_f1(predictions, references) == pytest.approx(100 * (0.8 + 0.5 + 2 / 3) / 3)
    # a listed class nobody predicted nor labelled drags the macro average down
    assert macro_f1(predictions, references, labels=["a", "b", "c", "d"]) == pytest.approx(
        100 * (0.8 + 0.5 + 2 / 3) / 4)
    assert classification_scores(predictions, references)["examples"] == 6


def test_classification_rejects_mismatched_lengths():
    with pytest.raises(LowresError, match="2 predictions for 3"):
        accuracy(["a", "b"], ["a", "b", "c"])


def test_entity_f1_equals_seqeval_and_a_hand_count():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O", "O"]]
    scores = entity_scores(predicted, gold)
    # gold entities: PER, LOC, ORG(2 words); predicted: PER (right), ORG at LOC (wrong), ORG(1 word, wrong span)
    assert scores["entity_precision"] == pytest.approx(100 / 3)
    assert scores["entity_recall"] == pytest.approx(100 / 3)
    assert scores["entity_f1"] == pytest.approx(100 * seqeval_f1(gold, predicted))
    with pytest.raises(LowresError, match="sentence 0"):
        entity_scores([["O"]], [["O", "O"]])


@pytest.mark.parametrize("raw,normalised", [
    ("The  Cat!", "cat"),
    ("an apple, a pear", "apple pear"),
    ("Theory", "theory"),  # only whole-word articles are removed
    ("Mulungu.", "mulungu"),
])
def test_squad_normalisation(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_qa_exact_match_and_f1_by_hand():
    predictions = ["the Eiffel Tower", "in Paris France", "blue"]
    gold = [["Eiffel Tower"], ["Paris", "Paris, France"], ["red"]]
    scores = qa_scores(predictions, gold)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    # q1 f1 1; q2 best gold "Paris, France": 2 of 3 predicted tokens, 2 of 2 gold -> 0.8; q3 0
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert token_f1("", "") == 1.0 and token_f1("a", "b c") == 0.0


def test_mean_std_uses_the_sample_standard_deviation():
    summary = mean_std([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert summary.mean == 5.0
    assert summary.std == pytest.approx(math.sqrt(32 / 7))
    assert mean_std([3.0]).std == 0.0
    assert "±" in str(summary)


def test_summarize_runs_keeps_numeric_metrics_shared_by_all_runs():
    runs = [{"f1": 70.0, "accuracy": 80, "note": "x"}, {"f1": 72.0, "accuracy": 82, "extra": 1}]
    summary = summarize_runs(runs)
    assert set(summary) == {"f1", "accuracy"}
    assert summary["f1"].mean == 71.0 and summary["f1"].std == pytest.approx(math.sqrt(2))
