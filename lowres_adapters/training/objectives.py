"""Plain training objectives: causal LM loss, masked LM masking (15%, 80/10/10) and its loss.

Every loss function has the loop's signature ``loss_fn(model, batch) -> (loss, n_predicted_tokens)``
where ``loss`` is the mean over the predicted tokens of the batch; the loop re-weights by
``n_predicted_tokens`` so accumulation and multi-process runs give the token-weighted mean of the
whole global batch. Losses are computed from ``.logits`` (not the model's ``labels=``), so a
wrapper whose forward takes ``input_ids``/``attention_mask`` and returns aligned logits works too.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
MASK_PROBABILITY = 0.15
LossFn = Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], tuple[torch.Tensor, int]]


def _forward_logits(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return output.logits if hasattr(output, "logits") else output[0]


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Return (mean cross-entropy over labels != -100, number of such labels).

    Args:
        logits: (batch, seq, vocab) scores.
        labels: (batch, seq) target ids, -100 where nothing is predicted.
    """
    vocab = logits.shape[-1]
    flat_logits = logits.reshape(-1, vocab)  # (batch * seq, vocab)
    flat_labels = labels.reshape(-1)  # (batch * seq,)
    count = int((flat_labels != IGNORE_INDEX).sum())
    if count == 0:
        return flat_logits.sum() * 0.0, 0
    loss = F.cross_entropy(flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss / count, count


def causal_lm_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Return the next-token loss: position t predicts ``labels[t + 1]``.

    ``batch`` holds ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding, and on
    prompt tokens for answer-only SFT), all (batch, seq).
    """
    logits = _forward_logits(model, batch)  # (batch, seq, vocab)
    shifted_logits = logits[:, :-1, :]  # (batch, seq - 1, vocab)
    shifted_labels = batch["labels"][:, 1:]  # (batch, seq - 1)
    return token_cross_entropy(shifted_logits, shifted_labels)


def masked_lm_loss(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Return the masked-LM loss on the positions whose label is not -100 (see :func:`mask_tokens`)."""
    logits = _forward_logits(model, batch)  # (batch, seq, vocab)
    return token_cross_entropy(logits, batch["labels"])


def mask_tokens(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, *, mask_token_id: int,
                vocab_size: int, generator: torch.Generator,
                probability: float = MASK_PROBABILITY) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask tokens for masked LM as BERT does: choose ``probability`` of the maskable tokens;
    of those 80% become the mask token, 10% a random token, 10% stay unchanged.

    Args:
        input_ids: (batch, seq) token ids (not changed in place).
        special_tokens_mask: (batch, seq) true for special and padding tokens, never chosen.
        mask_token_id: Id of the mask token.
        vocab_size: Size of the vocabulary random replacements are drawn from.
        generator: Seeded generator: the same generator state gives the same masks.
        probability: Share of maskable tokens to predict.

    Returns:
        ``(masked_input_ids, labels)``: labels hold the original id where a token was chosen and
        -100 elsewhere.
    """
    if not 0 < probability < 1:
        raise ValueError(f"mask probability must be in (0, 1), got {probability}")
    shape = input_ids.shape
    chosen = (torch.rand(shape, generator=generator) < probability) & ~special_tokens_mask.bool()
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    decision = torch.rand(shape, generator=generator)
    random_ids = torch.randint(vocab_size, shape, generator=generator, dtype=input_ids.dtype)
    masked = input_ids.clone()
    masked[chosen & (decision < 0.8)] = mask_token_id
    replace = chosen & (decision >= 0.8) & (decision < 0.9)
    masked[replace] = random_ids[replace]
    return masked, labels


def count_input_tokens(batch: Mapping[str, Any]) -> int:
    """Return the number of real (non-padding) input tokens of a batch, for tokens/s."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())
