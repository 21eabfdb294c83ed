"""Cross-lingual retrieval on parallel text: pooled sentence vectors and top-1 accuracy.

A model's sentence vector is a pooled hidden state. In a causal decoder the first position
(BOS, or the first token) is the attention sink: its state is the same for every text and its
norm is many times that of the other positions ("massive activations", Sun et al. 2024,
arXiv 2402.17762), so a plain mean over all real tokens is dominated by it and every text looks
alike. :func:`content_mask` leaves such positions out (``skip_first``).

``top1_accuracy(queries, documents)``: the share of queries whose most cosine-similar document
is their own pair (row ``i`` of both). With ``n`` pairs chance is ``1 / n``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

POOLINGS = ("mean", "first", "last")


def pool_sequence(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce ``(batch, seq, hidden)`` states to ``(batch, hidden)`` over the real (unmasked) tokens.

    Args:
        hidden: Hidden states.
        attention_mask: ``(batch, seq)``, 1 on real tokens; padding may be on either side.
        pooling: ``mean``, ``first`` (first real token) or ``last`` (last real token).
    """
    mask = attention_mask.to(hidden.dtype)  # (batch, seq)
    if pooling == "mean":
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)  # (batch, hidden)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
    positions = torch.arange(hidden.shape[1], device=hidden.device).expand_as(attention_mask)  # (batch, seq)
    real = attention_mask.bool()
    if pooling == "first":
        index = torch.where(real, positions, hidden.shape[1]).min(dim=1).values  # (batch,)
    elif pooling == "last":
        index = torch.where(real, positions, -1).max(dim=1).values  # (batch,)
    else:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    index = index.clamp(0, hidden.shape[1] - 1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]  # (batch, hidden)


def content_mask(attention_mask: torch.Tensor, skip_first: int) -> torch.Tensor:
    """Return ``attention_mask`` with the first ``skip_first`` real tokens of every row set to 0.

    Rows with no more than ``skip_first`` real tokens keep their last real token, so no row is empty.

    Args:
        attention_mask: ``(batch, seq)``, 1 on real tokens (right or left padding).
        skip_first: Real tokens to leave out at the start of each row.
    """
    if skip_first <= 0:
        return attention_mask
    real = attention_mask.bool()
    rank = real.long().cumsum(dim=1)  # (batch, seq): 1-based rank of each real token
    kept = real & (rank > skip_first)
    empty = ~kept.any(dim=1)  # (batch,)
    if empty.any():
        last = torch.where(real, torch.arange(real.shape[1]).expand_as(real), -1).max(dim=1).values  # (batch,)
        kept[empty, last[empty].clamp_min(0)] = True
    return kept.to(attention_mask.dtype)


def pool_content(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, skip_first: int = 0) -> torch.Tensor:
    """Pool ``(batch, seq, hidden)`` states over the real tokens after the first ``skip_first`` ones."""
    return pool_sequence(hidden, content_mask(attention_mask, skip_first), pooling)


@torch.no_grad()
def pooled_features(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *, layers: Sequence[int],
                    pooling: str = "mean", skip_first: int = 1, max_length: int = 64,
                    batch_size: int = 16) -> dict[int, torch.Tensor]:
    """Return ``{layer: (len(texts), hidden)}`` pooled hidden states of ``model`` (eval mode, float32).

    Args:
        model: A transformers model (or wrapper) accepting ``output_hidden_states``.
        tokenizer: Its tokenizer (its special tokens, e.g. BOS, are added as in training).
        texts: The texts.
        layers: Indices into ``hidden_states`` (0 = embeddings, -1 = last layer).
        pooling: ``mean``, ``first`` or ``last``.
        skip_first: Real tokens left out at the start (1 = the attention sink).
        max_length: Tokens per text.
        batch_size: Texts per forward pass.
    """
    was_training = model.training
    model.eval()
    chunks: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(texts), batch_size):
        encoded = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
                   for text in texts[start: start + batch_size]]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in encoded])  # (batch, seq)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded])  # (batch, seq)
        hidden_states = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        for layer in layers:
            chunks[layer].append(pool_content(hidden_states[layer].float(), mask, pooling, skip_first))
    model.train(was_training)
    return {layer: torch.cat(parts) for layer, parts in chunks.items()}


def top1_accuracy(queries: torch.Tensor, documents: torch.Tensor) -> float:
    """Return the share of query rows whose most cosine-similar document row is their own (same index).

    Args:
        queries: ``(n, dim)``.
        documents: ``(n, dim)``; row ``i`` is the translation of query ``i``.
    """
    if queries.shape != documents.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and documents {tuple(documents.shape)} differ")
    queries = torch.nn.functional.normalize(queries.float(), dim=-1)
    documents = torch.nn.functional.normalize(documents.float(), dim=-1)
    best = (queries @ documents.T).argmax(dim=-1)  # (n,)
    return float((best == torch.arange(queries.shape[0])).float().mean())
