"""Objectives and batching: CLM loss, MLM masking (15%, 80/10/10), padding, answer-only labels."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model, tiny_tokenizer
from lowres_adapters.training.batching import (
    CausalCollator,
    MaskedCollator,
    pad_features,
    tokenize_for_clm,
    tokenize_for_mlm,
    tokenize_prompt_answer,
)
from lowres_adapters.training.objectives import IGNORE_INDEX, causal_lm_loss, mask_tokens, masked_lm_loss


def test_causal_loss_matches_the_model_own_loss_on_an_unpadded_batch():
    model, tokenizer = tiny_model("llama")
    batch = pad_features(tokenize_for_clm(tokenizer, TINY_CORPUS[:1], 64), tokenizer.pad_token_id)
    loss, count = causal_lm_loss(model, batch)
    reference = model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
    assert count == batch["input_ids"].shape[1] - 1
    torch.testing.assert_close(loss, reference)


def test_padding_does_not_change_a_text_loss():
    model, tokenizer = tiny_model("llama")
    features = tokenize_for_clm(tokenizer, [TINY_CORPUS[0], TINY_CORPUS[1]], 64)
    alone, alone_count = causal_lm_loss(model, pad_features(features[:1], tokenizer.pad_token_id))
    padded = pad_features(features, tokenizer.pad_token_id)
    assert (padded["labels"][1] == IGNORE_INDEX).sum() == padded["input_ids"].shape[1] - len(features[1]["input_ids"])
    both, both_count = causal_lm_loss(model, padded)
    other, other_count = causal_lm_loss(model, pad_features(features[1:], tokenizer.pad_token_id))
    assert both_count == alone_count + other_count
    torch.testing.assert_close(both * both_count, alone * alone_count + other * other_count, rtol=1e-5, atol=1e-4)


def test_mask_rates_follow_15_percent_and_80_10_10():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(10, 1000, (200, 500), generator=generator)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = True
    masked, labels = mask_tokens(input_ids, special, mask_token_id=4, vocab_size=1000,
                                 generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, 0].any()
    assert chosen.float().mean().item() == pytest.approx(0.15 * 499 / 500, abs=0.005)
    assert torch.equal(labels[chosen], input_ids[chosen])
    to_mask = (masked[chosen] == 4).float().mean().item()
    unchanged = (masked[chosen] == input_ids[chosen]).float().mean().item()
    assert to_mask == pytest.approx(0.8, abs=0.01)
    assert unchanged == pytest.approx(0.1 + 0.1 / 1000, abs=0.01)
    assert torch.equal(masked[~chosen], input_ids[~chosen])


def test_masks_depend_only_on_the_generator_seed():
    tokenizer = tiny_tokenizer()
    collate = MaskedCollator(tokenizer)
    features = tokenize_for_mlm(tokenizer, TINY_CORPUS, 64)
    first = collate(features, torch.Generator().manual_seed(5))
    again = collate(features, torch.Generator().manual_seed(5))
    other = collate(features, torch.Generator().manual_seed(6))
    assert torch.equal(first["labels"], again["labels"]) and torch.equal(first["input_ids"], again["input_ids"])
    assert not torch.equal(first["labels"], other["labels"])
    specials = torch.isin(first["input_ids"], torch.tensor(tokenizer.all_special_ids))
    assert (first["labels"][specials & (first["attention_mask"] == 0)] == IGNORE_INDEX).all()


def test_masked_lm_loss_counts_only_masked_positions():
    model, tokenizer = tiny_model("xlmr")
    batch = MaskedCollator(tokenizer)(tokenize_for_mlm(tokenizer, TINY_CORPUS, 64), torch.Generator().manual_seed(0))
    loss, count = masked_lm_loss(model, batch)
    assert count == int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert torch.isfinite(loss)


def test_prompt_tokens_are_never_labels_and_long_prompts_are_cut_from_the_left():
    tokenizer = tiny_tokenizer()
    feature = tokenize_prompt_answer(tokenizer, "Translate: " + TINY_CORPUS[1], TINY_CORPUS[0], 512)
    answer = tokenizer(TINY_CORPUS[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    labelled = [label for label in feature["labels"] if label != IGNORE_INDEX]
    assert labelled == answer
    assert feature["input_ids"][-len(answer):] == answer
    short = tokenize_prompt_answer(tokenizer, "Translate: " + " ".join(TINY_CORPUS), TINY_CORPUS[0], len(answer) + 5)
    assert len(short["input_ids"]) == len(answer) + 5
    assert [label for label in short["labels"] if label != IGNORE_INDEX] == answer


def test_causal_collator_pads_to_the_longest_feature_only():
    tokenizer = tiny_tokenizer()
    features = tokenize_for_clm(tokenizer, TINY_CORPUS[:2], 128)
    batch = CausalCollator(tokenizer.pad_token_id)(features, torch.Generator())
    assert batch["input_ids"].shape == (2, max(len(f["input_ids"]) for f in features))
    assert batch["attention_mask"].sum().item() == sum(len(f["input_ids"]) for f in features)


def test_lazy_features_tokenise_on_access_like_the_eager_path():
    from lowres_adapters.training.lm_objectives import CAUSAL_LM

    tokenizer = tiny_tokenizer()
    texts = [TINY_CORPUS[0], "   ", TINY_CORPUS[1], TINY_CORPUS[2]]
    lazy = CAUSAL_LM.lazy_features(tokenizer, texts, 16)
    eager = tokenize_for_clm(tokenizer, texts, 16)
    assert len(lazy) == len(eager) == 3
    assert not lazy._cache
    assert lazy[2] == eager[2] and lazy[-1] == eager[-1] and lazy[0:2] == eager[0:2]
    assert set(lazy._cache) == {0, 1, 2}
    with pytest.raises(IndexError):
        lazy[3]
