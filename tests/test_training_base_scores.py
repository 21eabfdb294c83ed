"""The base model's held-out figures are cached only for models with a pinned revision."""

from __future__ import annotations

import pytest

from lowres_adapters.training.base_scores import cached_base_scores


@pytest.fixture
def calls(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path))
    monkeypatch.setattr("lowres_adapters.training.base_scores.model_revision",
                        lambda model_id: "rev1" if model_id == "pinned" else None)
    counter = []

    def score():
        counter.append(1)
        return {"bits_per_char": 3.5 + len(counter)}

    return counter, score


def test_pinned_models_are_scored_once_per_texts_and_settings(calls):
    counter, score = calls
    first = cached_base_scores("pinned", {"recipe": "language"}, ["a", "b"], score)
    again = cached_base_scores("pinned", {"recipe": "language"}, ["a", "b"], score)
    assert first == again == {"bits_per_char": 4.5} and len(counter) == 1
    cached_base_scores("pinned", {"recipe": "language"}, ["a", "c"], score)
    cached_base_scores("pinned", {"recipe": "sft"}, ["a", "b"], score)
    assert len(counter) == 3


def test_models_without_a_revision_are_always_scored(calls):
    counter, score = calls
    cached_base_scores("some/folder", {}, ["a"], score)
    cached_base_scores("some/folder", {}, ["a"], score)
    assert len(counter) == 2
