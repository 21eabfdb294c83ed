"""Pseudo-log-likelihood and pseudo-perplexity of masked language models.

Each token of a sentence is masked in turn and the model's log-probability of the true token is
summed (the pseudo-log-likelihood, PLL). A sentence's pseudo-perplexity is ``exp(-PLL / N)`` for
its ``N`` tokens; the reported figure is the mean over sentences (arXiv 2502.10140). The masked
copies of all sentences are batched together.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.lm_scores import LanguageModelScores, model_device, window_spans


def masked_copies(tokenizer: Any, text: str, max_length: int) -> list[tuple[list[int], int, int]]:
    """Return one ``(input ids, masked position, true token id)`` per content token of ``text``.

    The tokenizer's own special tokens (e.g. ``<s> ... </s>``) surround every input. Texts longer
    than ``max_length`` (special tokens included) are cut into windows; each token is masked in
    exactly one window.
    """
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise LowresError("pseudo-perplexity needs a tokenizer with a mask token")
    encoded = tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True)
    full_ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    content_positions = [position for position, flag in enumerate(special) if not flag]
    if not content_positions:
        return []
    first, last = content_positions[0], content_positions[-1]
    prefix, content, suffix = full_ids[:first], full_ids[first:last + 1], full_ids[last + 1:]
    budget = max_length - len(prefix) - len(suffix)
    copies = []
    for start, end, first_scored in window_spans(len(content), budget, first_target=0):
        window = [*prefix, *content[start:end], *suffix]
        for position in range(len(prefix) + first_scored - start, len(prefix) + end - start):
            masked = list(window)
            masked[position] = mask_id
            copies.append((masked, position, window[position]))
    return copies


def score_texts_mlm(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 8,
                    max_length: int = 512) -> LanguageModelScores:
    """Score ``texts`` with a masked LM by pseudo-log-likelihood.

    Args:
        model: A masked LM (or wrapper) whose forward returns ``.logits`` aligned with the input.
        tokenizer: Its tokenizer (needs a mask token).
        texts: Texts to score; empty ones are skipped.
        batch_size: Masked copies per forward pass.
        max_length: Longest input in tokens, special tokens included.

    Returns:
        Totals with ``nll_nats = -PLL`` summed over texts and ``pseudo_perplexity`` set.
    """
    rows: list[tuple[list[int], int, int, int]] = []  # (ids, masked position, true id, text index)
    chars = n_bytes = 0
    kept_texts = 0
    for text in texts:
        copies = masked_copies(tokenizer, text, max_length)
        if not copies:
            continue
        for ids, position, true_id in copies:
            rows.append((ids, position, true_id, kept_texts))
        kept_texts += 1
        chars += len(text)
        n_bytes += len(text.encode("utf-8"))
    if not rows:
        raise LowresError("nothing to score: every text is empty")

    device = model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pll_per_text = [0.0] * kept_texts
    tokens_per_text = [0] * kept_texts
    order = sorted(range(len(rows)), key=lambda index: len(rows[index][0]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for offset in range(0, len(order), batch_size):
                batch = [rows[index] for index in order[offset:offset + batch_size]]
                width = max(len(ids) for ids, *_ in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (batch, seq)
                attention_mask = torch.zeros((len(batch), width), dtype=torch.long)  # (batch, seq)
                for row, (ids, *_rest) in enumerate(batch):
                    input_ids[row, :len(ids)] = torch.tensor(ids)
                    attention_mask[row, :len(ids)] = 1
                logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
                positions = torch.tensor([position for _, position, _, _ in batch], device=device)  # (batch,)
                true_ids = torch.tensor([true_id for _, _, true_id, _ in batch], device=device)  # (batch,)
                rows_index = torch.arange(len(batch), device=device)  # (batch,)
                masked_logits = logits[rows_index, positions].float()  # (batch, vocab)
                log_probs = torch.log_softmax(masked_logits, dim=-1)  # (batch, vocab)
                true_log_probs = log_probs[rows_index, true_ids].double().tolist()  # (batch,)
                for (_, _, _, text_index), log_prob in zip(batch, true_log_probs):
                    pll_per_text[text_index] += log_prob
                    tokens_per_text[text_index] += 1
    finally:
        model.train(was_training)
    per_text = [math.exp(-pll / count) for pll, count in zip(pll_per_text, tokens_per_text)]
    return LanguageModelScores(nll_nats=-sum(pll_per_text), tokens=sum(tokens_per_text), chars=chars,
                               bytes=n_bytes, texts=kept_texts, objective="mlm",
                               pseudo_perplexity=sum(per_text) / len(per_text))
