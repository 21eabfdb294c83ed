"""What limits a step: its floating-point work against what this machine's matmul reaches.

The estimate counts the matrix multiplies of a transformer step (2 FLOPs per multiply-add):

- body, per token slot (padding included: it is computed too): the attention projections and the
  feed-forward layers, plus the attention scores over the slots a token attends to;
- head, per scored position: the head transform (encoders) and ``hidden x scored vocabulary``;
- backward: the base weights are frozen, so the backward pass computes input gradients only,
  about as much work as the forward pass (adapter weights are too small to count).
  A step is therefore about 2 x forward.
"""

from __future__ import annotations

import time
from typing import Any

import torch


def forward_flops(config: Any, slots: int, attended: float, scored: int, scored_vocab: int) -> float:
    """Return the forward FLOPs of one step.

    Args:
        config: The transformers config (hidden size, layers, heads, feed-forward size).
        slots: Token slots in the step's batches (padding included).
        attended: Mean number of slots each token attends to.
        scored: Positions the LM head scores.
        scored_vocab: Vocabulary rows each scored position is compared with.
    """
    hidden = config.hidden_size
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = hidden // heads
    feed_forward = config.intermediate_size
    gated = config.model_type in ("llama", "mistral", "qwen2", "qwen3")
    projections = hidden * hidden * 2 + hidden * kv_heads * head_dim * 2  # q, o + k, v
    mlp = hidden * feed_forward * (3 if gated else 2)
    scores = 2 * attended * hidden  # q.k and weights.v
    body = 2.0 * layers * (projections + mlp + scores) * slots
    transform = hidden * hidden if config.model_type in ("xlm-roberta", "roberta", "bert") else 0
    head = 2.0 * scored * (transform + hidden * scored_vocab)
    return body + head


def step_flops(config: Any, slots: int, attended: float, scored: int, scored_vocab: int) -> float:
    """Return the FLOPs of one training step (forward + input-gradient backward = 2 x forward)."""
    return 2.0 * forward_flops(config, slots, attended, scored, scored_vocab)


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Return the best float32 GFLOP/s of a ``size`` square matrix multiply at the current threads."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2.0 * size ** 3 / best / 1e9


def bf16_matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Return the best bfloat16 GFLOP/s of a square matrix multiply (oneDNN uses AVX512-BF16/AMX)."""
    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2.0 * size ** 3 / best / 1e9
