"""The optimised LM losses give the plain forward's loss and gradients on the same batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import tiny_model
from lowres_adapters.training.fast_lm import (
    VocabularyTrim, causal_lm_loss, masked_lm_loss, output_logits, plain_causal_lm_loss,
    plain_lm_loss, split_lm_model,
)
from lowres_adapters.training.lm_objectives import MASKED_LM, objective_named


def _mlm_batch(tokenizer, seed: int = 0) -> dict[str, torch.Tensor]:
    texts = ["Pachiyambi Mulungu adalenga kumwamba", "God is light, and in him is no darkness at all."]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    generator = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(encoded["input_ids"].shape, generator=generator) < 0.3) & encoded["attention_mask"].bool()
    chosen[:, 1] = True  # at least one masked position per row
    labels = torch.where(chosen, encoded["input_ids"], torch.full_like(encoded["input_ids"], -100))
    inputs = encoded["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
    return {"input_ids": inputs, "attention_mask": encoded["attention_mask"], "labels": labels}


def _clm_batch(tokenizer) -> dict[str, torch.Tensor]:
    texts = ["Ndipo dziko lapansi linali lopanda maonekedwe", "And the earth was without form, and void."]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _trim_for(batch, vocab_size: int) -> VocabularyTrim:
    return VocabularyTrim.from_token_ids(batch["labels"][batch["labels"] >= 0], vocab_size)


@pytest.mark.parametrize("kind", ["xlmr", "bert"])
def test_masked_only_loss_and_gradients_equal_the_plain_forward(kind):
    model, tokenizer = tiny_model(kind)
    model.train()
    batch = _mlm_batch(tokenizer)
    torch.manual_seed(0)
    plain, plain_count = plain_lm_loss(model, batch)
    plain.backward()
    expected = _grads(model)
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks
    fast, fast_count = masked_lm_loss(model, batch)
    fast.backward()
    assert fast_count == plain_count == int((batch["labels"] >= 0).sum())
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_causal_loss_skips_padding_and_equals_the_plain_forward():
    model, tokenizer = tiny_model("llama")
    batch = _clm_batch(tokenizer)
    plain, plain_count = plain_causal_lm_loss(model, batch)
    fast, fast_count = causal_lm_loss(model, batch)
    assert fast_count == plain_count
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_trimmed_vocabulary_equals_full_softmax_restricted_to_kept_ids():
    model, tokenizer = tiny_model("xlmr")
    batch = _mlm_batch(tokenizer)
    trim = _trim_for(batch, model.config.vocab_size)
    assert trim.size < model.config.vocab_size
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    selected = batch["labels"] >= 0
    restricted = logits[selected][:, trim.kept_ids]  # (n, kept)
    expected = torch.nn.functional.cross_entropy(restricted, trim.map_targets(batch["labels"][selected]))
    trimmed, _ = masked_lm_loss(model, batch, trim=trim)
    torch.testing.assert_close(trimmed, expected, rtol=1e-5, atol=1e-6)
    # Keeping every id is exactly the untrimmed loss.
    everything = VocabularyTrim.from_token_ids([list(range(model.config.vocab_size))], model.config.vocab_size)
    torch.testing.assert_close(masked_lm_loss(model, batch, trim=everything)[0], plain_lm_loss(model, batch)[0])


def test_trim_leaves_the_model_unchanged():
    model, tokenizer = tiny_model("llama")
    batch = _clm_batch(tokenizer)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    causal_lm_loss(model, batch, trim=_trim_for(batch, model.config.vocab_size))[0].backward()
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].shape == tensor.shape and torch.equal(after[name], tensor), name
    assert model.get_output_embeddings().out_features == model.config.vocab_size


def test_chunked_scoring_gives_the_same_loss_and_gradients():
    model, tokenizer = tiny_model("llama")
    model.train()
    batch = _clm_batch(tokenizer)
    torch.manual_seed(0)
    whole, _ = causal_lm_loss(model, batch)
    whole.backward()
    expected = _grads(model)
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks
    chunked, _ = causal_lm_loss(model, batch, chunk_size=5)
    chunked.backward()
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_targets_outside_the_trim_are_an_error():
    trim = VocabularyTrim.from_token_ids([[5, 7, 9]], vocab_size=20, always_keep=[0])
    assert trim.kept_ids.tolist() == [0, 5, 7, 9]
    assert trim.map_targets(torch.tensor([9, 0, 5])).tolist() == [3, 0, 1]
    with pytest.raises(LowresError, match="not in the trimmed vocabulary"):
        trim.map_targets(torch.tensor([6]))
    with pytest.raises(LowresError, match="outside the vocabulary"):
        VocabularyTrim.from_token_ids([[25]], vocab_size=20)


def test_a_widened_trim_scores_a_batch_over_the_kept_ids_and_its_targets():
    model, tokenizer = tiny_model("llama")
    batch = _clm_batch(tokenizer)
    targets = batch["labels"][:, 1:][batch["labels"][:, 1:] >= 0]
    vocab_size = model.config.vocab_size
    first_half = VocabularyTrim.from_token_ids([targets[: len(targets) // 2]], vocab_size)  # misses some targets
    assert (first_half.position_of[targets] < 0).any()
    with pytest.raises(LowresError, match="not in the trimmed vocabulary"):
        causal_lm_loss(model, batch, trim=first_half)
    widened = dataclasses.replace(first_half, widen_to_targets=True)
    expected = VocabularyTrim.from_token_ids([first_half.kept_ids, targets], vocab_size)
    assert torch.equal(widened.covering(targets).kept_ids, expected.kept_ids)
    torch.testing.assert_close(causal_lm_loss(model, batch, trim=widened)[0],
                               causal_lm_loss(model, batch, trim=expected)[0])
    assert widened.with_negatives(3).widen_to_targets and widened.covering(first_half.kept_ids) is widened


@pytest.mark.parametrize("config", ["seq_bn", "seq_bn_inv"])
def test_adapterhub_adapters_and_invertible_head_hook_are_honoured(config):
    adapters = pytest.importorskip("adapters")
    model, tokenizer = tiny_model("xlmr")
    adapters.init(model)
    model.add_adapter("lang", config=config)
    model.train_adapter("lang")
    model.eval()  # no dropout: both paths see the same network
    for parameter in model.base_model.parameters():  # make the adapter do something
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.2)
    batch = _mlm_batch(tokenizer)
    plain, _ = plain_lm_loss(model, batch)
    fast, _ = masked_lm_loss(model, batch)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_peft_wrapped_model_is_unwrapped():
    peft = pytest.importorskip("peft")
    model, tokenizer = tiny_model("llama")
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    wrapped = peft.get_peft_model(model, config)
    batch = _clm_batch(tokenizer)
    assert split_lm_model(wrapped).body is model.model
    torch.testing.assert_close(causal_lm_loss(wrapped, batch)[0], plain_causal_lm_loss(wrapped, batch)[0])


def test_objective_fast_loss_switches():
    model, tokenizer = tiny_model("xlmr")
    batch = _mlm_batch(tokenizer)
    plain = MASKED_LM.fast_loss(masked_only_logits=False)(model, batch)[0]
    fast = MASKED_LM.fast_loss()(model, batch)[0]
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    with pytest.raises(LowresError):
        MASKED_LM.fast_loss(masked_only_logits=False, trim=_trim_for(batch, model.config.vocab_size))
    with pytest.raises(LowresError):
        objective_named("seq2seq")


def test_output_logits_shape_with_trim():
    model, _ = tiny_model("xlmr")
    parts = split_lm_model(model)
    trim = VocabularyTrim.from_token_ids([[3, 4, 10]], model.config.vocab_size)
    hidden = torch.randn(6, model.config.hidden_size)
    assert output_logits(parts, hidden).shape == (6, model.config.vocab_size)
    assert output_logits(parts, hidden, trim).shape == (6, 3)


def test_sampled_negatives_drawing_every_dropped_id_is_the_full_loss():
    model, tokenizer = tiny_model("xlmr")
    batch = _mlm_batch(tokenizer)
    trim = _trim_for(batch, model.config.vocab_size)
    everything = trim.with_negatives(10**6)
    assert everything.negatives == model.config.vocab_size - trim.size
    torch.testing.assert_close(masked_lm_loss(model, batch, trim=everything)[0], plain_lm_loss(model, batch)[0])


def test_sampled_negatives_estimate_the_full_partition_function():
    model, tokenizer = tiny_model("xlmr")
    parts = split_lm_model(model)
    batch = _mlm_batch(tokenizer)
    trim = _trim_for(batch, model.config.vocab_size).with_negatives(40)
    hidden = torch.randn(3, model.config.hidden_size)
    with torch.no_grad():
        full = output_logits(parts, hidden).exp().sum(-1)  # (3,)
        torch.manual_seed(0)
        estimates = torch.stack([output_logits(parts, hidden, trim).exp().sum(-1) for _ in range(400)])
    assert output_logits(parts, hidden, trim).shape == (3, trim.size + 40)
    torch.testing.assert_close(estimates.mean(0), full, rtol=0.03, atol=0)  # unbiased: the mean converges
    with pytest.raises(LowresError):
        trim.with_negatives(-1)
