"""Perplexity, bits/char and pseudo-perplexity on tiny models, against slow reference loops."""

from __future__ import annotations

import math

import pytest
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.language_modeling import score_texts, window_spans
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model

TEXTS = list(TINY_CORPUS)


@pytest.fixture(scope="module")
def llama():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def xlmr():
    return tiny_model("xlmr")


def reference_clm_nll(model, tokenizer, text: str) -> tuple[float, int]:
    """Score one text in one forward pass with the model's own loss."""
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        loss = model(input_ids=input_ids, labels=input_ids).loss
    return float(loss) * (len(ids) - 1), len(ids) - 1


def reference_pll(model, tokenizer, text: str) -> tuple[float, int]:
    """Mask each content token in turn, one forward pass per token."""
    encoded = tokenizer(text, return_special_tokens_mask=True)
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    total, count = 0.0, 0
    for position, is_special in enumerate(special):
        if is_special:
            continue
        masked = torch.tensor([ids])
        masked[0, position] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=masked).logits
        total += float(torch.log_softmax(logits[0, position], dim=-1)[ids[position]])
        count += 1
    return total, count


def test_clm_matches_the_models_own_loss(llama):
    model, tokenizer = llama
    scores = score_texts(model, tokenizer, TEXTS)
    reference = [reference_clm_nll(model, tokenizer, text) for text in TEXTS]
    assert scores.tokens == sum(count for _, count in reference)
    assert scores.nll_nats == pytest.approx(sum(nll for nll, _ in reference), rel=1e-5)
    assert scores.chars == sum(len(text) for text in TEXTS)
    assert scores.bits_per_char == pytest.approx(scores.nll_nats / math.log(2) / scores.chars)
    assert scores.perplexity == pytest.approx(math.exp(scores.nll_nats / scores.tokens))


@pytest.mark.parametrize("batch_size", [1, 2, 5, 16])
def test_bits_per_char_does_not_depend_on_batch_size(llama, batch_size):
    model, tokenizer = llama
    one_by_one = score_texts(model, tokenizer, TEXTS, batch_size=1)
    batched = score_texts(model, tokenizer, TEXTS, batch_size=batch_size)
    assert batched.tokens == one_by_one.tokens
    assert batched.bits_per_char == pytest.approx(one_by_one.bits_per_char, rel=1e-6)


def reference_windowed_clm_nll(model, tokenizer, text: str, max_length: int) -> tuple[float, int]:
    """Score each token once, seeing only the tokens of its window (one forward pass per window)."""
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    total, count = 0.0, 0
    for start, end, first in window_spans(len(ids), max_length):
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=torch.tensor([ids[start:end]])).logits[0], dim=-1)
        for position in range(first, end):
            total -= float(log_probs[position - 1 - start, ids[position]])
            count += 1
    return total, count


def test_long_texts_are_scored_in_windows_once_per_token(llama):
    model, tokenizer = llama
    text = " ".join(TEXTS)
    whole = score_texts(model, tokenizer, [text], max_length=256)
    windowed = score_texts(model, tokenizer, [text], max_length=16)
    assert windowed.tokens == whole.tokens
    nll, count = reference_windowed_clm_nll(model, tokenizer, text, 16)
    assert windowed.tokens == count and windowed.nll_nats == pytest.approx(nll, rel=1e-5)
    assert whole.nll_nats == pytest.approx(reference_clm_nll(model, tokenizer, text)[0], rel=1e-4)


@pytest.mark.parametrize("length,max_length", [(2, 4), (10, 4), (33, 8), (100, 7)])
def test_window_spans_score_every_position_exactly_once(length, max_length):
    scored = []
    for start, end, first in window_spans(length, max_length):
        assert end - start <= max_length
        assert start < first <= end
        scored.extend(range(first, end))
    assert scored == list(range(1, length))


def test_wrapper_models_with_input_ids_and_attention_mask_are_scored(llama):
    model, tokenizer = llama

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    assert score_texts(Wrapper(), tokenizer, TEXTS).nll_nats == pytest.approx(
        score_texts(model, tokenizer, TEXTS).nll_nats, rel=1e-6)


def test_empty_texts_are_skipped_and_nothing_to_score_is_an_error(llama):
    model, tokenizer = llama
    with_empty = score_texts(model, tokenizer, ["", TEXTS[0], ""])
    assert with_empty.texts == 1
    assert with_empty.chars == len(TEXTS[0])
    with pytest.raises(LowresError, match="nothing to score"):
        score_texts(model, tokenizer, ["", ""])
    with pytest.raises(LowresError, match="objective"):
        score_texts(model, tokenizer, TEXTS, objective="seq2seq")


def test_pseudo_perplexity_matches_a_slow_reference_loop(xlmr):
    model, tokenizer = xlmr
    scores = score_texts(model, tokenizer, TEXTS[:3], objective="mlm", batch_size=7)
    reference = [reference_pll(model, tokenizer, text) for text in TEXTS[:3]]
    expected_pppl = sum(math.exp(-pll / count) for pll, count in reference) / len(reference)
    assert scores.tokens == sum(count for _, count in reference)
    assert scores.nll_nats == pytest.approx(-sum(pll for pll, _ in reference), rel=1e-5)
    assert scores.pseudo_perplexity == pytest.approx(expected_pppl, rel=1e-5)
    assert scores.to_dict()["pseudo_perplexity"] == scores.pseudo_perplexity


def reference_windowed_pll(model, tokenizer, text: str, max_length: int) -> tuple[float, int]:
    """Mask each content token in turn inside windows of ``max_length`` tokens, the tokenizer's own special
    tokens (none for the tiny tokenizer) around each window."""
    encoded = tokenizer(text, return_special_tokens_mask=True)
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    content_at = [position for position, flag in enumerate(special) if not flag]
    prefix, suffix = ids[: content_at[0]], ids[content_at[-1] + 1:]
    content = ids[content_at[0]: content_at[-1] + 1]
    total, count = 0.0, 0
    for start, end, first in window_spans(len(content), max_length - len(prefix) - len(suffix), first_target=0):
        window = [*prefix, *content[start:end], *suffix]
        for index in range(first, end):
            position = len(prefix) + index - start
            masked = torch.tensor([window])
            masked[0, position] = tokenizer.mask_token_id
            with torch.no_grad():
                logits = model(input_ids=masked).logits
            total += float(torch.log_softmax(logits[0, position], dim=-1)[window[position]])
            count += 1
    return total, count


def test_pseudo_perplexity_windows_long_texts(xlmr):
    model, tokenizer = xlmr
    whole = score_texts(model, tokenizer, TEXTS[:2], objective="mlm")
    windowed = score_texts(model, tokenizer, TEXTS[:2], objective="mlm", max_length=8)
    assert windowed.tokens == whole.tokens
    reference = [reference_windowed_pll(model, tokenizer, text, 8) for text in TEXTS[:2]]
    assert windowed.tokens == sum(count for _, count in reference)
    assert windowed.nll_nats == pytest.approx(-sum(pll for pll, _ in reference), rel=1e-5)
    assert windowed.nll_nats != pytest.approx(whole.nll_nats, rel=1e-3)  # less context really was used
