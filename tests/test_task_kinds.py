"""Task kinds are registered specs: the built-ins register like plugins, and a plugin's kind gets a head."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.plugin import TaskKind, hookimpl
from lowres_adapters.registry import Registry, get_registry, reset_registry
from lowres_adapters.training.heads import HeadConfig, TaskHead


def install_dialect_kind() -> None:
    """Make the registry hold a plugin's ``dialect_id`` kind (one label per text)."""
    class Plugin:
        @hookimpl
        def register_task_kinds(self, register):
            register(TaskKind(name="dialect_id", labels_per_example="one", description="which dialect a text is in"))

    registry = Registry(strict=True)
    registry.add_plugin(Plugin(), name="dialects")
    reset_registry(registry)


def test_builtin_kinds_are_registered_through_the_hook() -> None:
    registry = get_registry()
    assert {"sequence_classification", "token_classification", "extractive_qa"} <= set(registry.names("task_kinds"))
    assert registry.provider("task_kinds", "extractive_qa").builtin


def test_a_plugin_kind_gets_the_head_of_what_it_labels() -> None:
    install_dialect_kind()
    head = TaskHead(HeadConfig(kind="dialect_id", num_labels=3, hidden_size=8))
    hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long)
    logits = head(hidden, mask)
    assert logits.shape == (2, 3)  # pooled: one label per text
    loss = head.loss(logits, {"labels": torch.tensor([0, 2])})
    assert loss.dim() == 0 and bool(torch.isfinite(loss))


def test_the_task_path_encodes_and_scores_a_plugin_kind_by_what_it_labels() -> None:
    from lowres_adapters.data.examples import LabeledExample, TaskData
    from lowres_adapters.testing.tiny import tiny_model
    from lowres_adapters.training.task_features import encode_examples
    from lowres_adapters.training.task_scoring import score_predictions

    install_dialect_kind()
    _, tokenizer = tiny_model("llama")
    labels = ("north", "south")
    examples = [LabeledExample(text="Mulungu ndiye kuwala", label="north"), LabeledExample(text="God", label="south")]
    as_plugin = encode_examples("dialect_id", examples, tokenizer, labels, max_length=16)
    as_builtin = encode_examples("sequence_classification", examples, tokenizer, labels, max_length=16)
    assert [(e.input_ids, e.targets) for e in as_plugin] == [(e.input_ids, e.targets) for e in as_builtin]
    scores = score_predictions(TaskData(kind="dialect_id", labels=labels, splits={}), examples, ["north", "north"])
    assert scores["accuracy"] == 50.0 and "macro_f1" in scores


def test_an_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="head kind must be one of .*extractive_qa.*got 'nope'"):
        HeadConfig(kind="nope")
    with pytest.raises(ValueError, match="exactly 2 outputs"):
        HeadConfig(kind="extractive_qa", num_labels=3)
