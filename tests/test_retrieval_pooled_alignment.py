"""Retrieval pieces (content pooling without the attention sink, top-1) and the pooled alignment adapter."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.evaluation.retrieval import content_mask, pool_content, pooled_features, top1_accuracy
from lowres_adapters.training.pooled_alignment import PooledAdapter, PooledAlignmentSettings, train_pooled_adapter


def test_content_mask_skips_the_first_real_tokens_with_either_padding():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert content_mask(right, 1).tolist() == [[0, 1, 1, 0], [0, 1, 0, 0]]
    assert content_mask(left, 1).tolist() == [[0, 0, 1, 1], [0, 0, 0, 1]]
    assert content_mask(right, 0).tolist() == right.tolist()


def test_content_mask_keeps_the_last_token_of_a_row_that_would_be_empty():
    assert content_mask(torch.tensor([[1, 0, 0], [1, 1, 1]]), 1).tolist() == [[1, 0, 0], [0, 1, 1]]


def test_mean_pooling_without_the_sink_ignores_a_huge_first_state():
    hidden = torch.tensor([[[1000.0, 0.0], [1.0, 2.0], [3.0, 4.0]]])  # (1, 3, 2): position 0 is the sink
    mask = torch.ones(1, 3, dtype=torch.long)
    assert pool_content(hidden, mask, "mean", skip_first=1).tolist() == [[2.0, 3.0]]
    assert pool_content(hidden, mask, "mean", skip_first=0)[0, 0] > 300


def test_top1_accuracy_counts_own_pairs_and_checks_shapes():
    vectors = torch.eye(4)
    assert top1_accuracy(vectors, vectors) == 1.0
    assert top1_accuracy(vectors, vectors[[1, 2, 3, 0]]) == 0.0
    assert top1_accuracy(vectors, vectors[[0, 1, 3, 2]]) == 0.5
    with pytest.raises(ValueError):
        top1_accuracy(vectors, vectors[:3])


def test_pooled_features_match_the_model_states_and_leave_train_mode_alone():
    from lowres_adapters.testing.tiny import tiny_model

    model, tokenizer = tiny_model("llama")
    model.train()
    texts = ["a b c d", "b c", "d d d d d d"]
    features = pooled_features(model, tokenizer, texts, layers=[1, -1], skip_first=1, max_length=16)
    assert model.training
    assert set(features) == {1, -1} and features[-1].shape == (3, model.config.hidden_size)
    model.eval()
    ids = tokenizer(texts[2], truncation=True, max_length=16)["input_ids"]
    with torch.no_grad():
        states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    assert torch.allclose(features[1][2], states[1][0, 1:].mean(0), atol=1e-5)


def rotated_pairs(count: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Student vectors and teachers that are a fixed rotation of them plus a shared offset and noise."""
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(count, dim, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    teacher = student @ rotation + 3.0 + 0.05 * torch.randn(count, dim, generator=generator)
    return student, teacher


def test_pooled_adapter_starts_as_the_identity():
    vectors = torch.randn(5, 8)
    assert torch.equal(PooledAdapter(8)(vectors), vectors)


@pytest.mark.parametrize("loss", ["infonce", "mse"])
def test_training_the_pooled_adapter_lifts_held_out_retrieval_far_above_chance(loss):
    student, teacher = rotated_pairs(400)
    train, held = slice(0, 300), slice(300, 400)
    before = top1_accuracy(teacher[held], student[held])
    adapter = train_pooled_adapter(student[train], teacher[train], loss, seed=0,
                                   settings=PooledAlignmentSettings(steps=300, lr=1e-2, batch_size=64))
    with torch.no_grad():
        after = top1_accuracy(teacher[held], adapter(student[held]))
    assert before < 0.2 and after > 0.9


def test_distribution_losses_need_log_probs_and_use_them():
    student, teacher = rotated_pairs(64, dim=8)
    with pytest.raises(ValueError, match="log_probs_of"):
        train_pooled_adapter(student, teacher, "kl")
    head = torch.nn.Linear(8, 12)
    seen = []

    def log_probs_of(vectors):
        seen.append(vectors.requires_grad)
        return torch.log_softmax(head(vectors), dim=-1)

    adapter = train_pooled_adapter(student, teacher, "kl", seed=0, log_probs_of=log_probs_of,
                                   settings=PooledAlignmentSettings(steps=5, batch_size=16))
    assert True in seen and adapter.linear.weight.abs().sum() > 0


def test_same_seed_same_adapter_other_seed_other_order():
    student, teacher = rotated_pairs(100)
    settings = PooledAlignmentSettings(steps=5, batch_size=16)
    first = train_pooled_adapter(student, teacher, "cosine", seed=1, settings=settings)
    again = train_pooled_adapter(student, teacher, "cosine", seed=1, settings=settings)
    other = train_pooled_adapter(student, teacher, "cosine", seed=2, settings=settings)
    assert torch.equal(first.linear.weight, again.linear.weight)
    assert not torch.equal(first.linear.weight, other.linear.weight)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError):
        train_pooled_adapter(torch.zeros(4, 3), torch.zeros(5, 3), "mse")
