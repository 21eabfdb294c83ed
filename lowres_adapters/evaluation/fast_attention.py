"""Grouped-query attention without copying the key/value heads, for scoring and generation on a CPU.

transformers' ``sdpa`` attention repeats every key/value head ``num_attention_heads /
num_key_value_heads`` times (a full copy of the key/value cache, per layer and per decoding step)
whenever an attention mask is given, which is always the case for padded batches; PyTorch's
``scaled_dot_product_attention(..., enable_gqa=True)`` reads the shared heads in place and gives
the same numbers (on a CPU, bit for bit in our checks). :func:`grouped_query_attention` switches a
model to that variant for the duration of a ``with`` block and puts the original back.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch

GQA_SDPA = "lowres_sdpa_gqa"
"""Name the variant is registered under in transformers' attention and mask interfaces."""


def _sdpa_gqa_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                      scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' ``sdpa_attention_forward`` with the key/value heads shared (``enable_gqa``), not repeated."""
    if attention_mask is not None and attention_mask.ndim == 4:
        attention_mask = attention_mask[:, :, :, :key.shape[-2]]
    if is_causal is None:
        is_causal = query.shape[2] > 1 and attention_mask is None and getattr(module, "is_causal", True)
    grouped = query.shape[1] != key.shape[1]
    output = torch.nn.functional.scaled_dot_product_attention(  # (batch, heads, queries, head_dim)
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, is_causal=is_causal,
        **({"enable_gqa": True} if grouped else {}))
    return output.transpose(1, 2).contiguous(), None


def _register() -> None:
    # lazy: transformers is heavy; imported once the first model is switched
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if GQA_SDPA not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionInterface.register(GQA_SDPA, _sdpa_gqa_forward)
        AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)  # the same masks as sdpa


def applies_to(model: Any) -> bool:
    """Return True when ``model`` runs transformers' ``sdpa`` attention on a CPU (where the variant helps)."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    parameter = next(iter(model.parameters()), None)
    return parameter is not None and parameter.device.type == "cpu"


_ACTIVE: dict[int, int] = {}
"""Open :func:`grouped_query_attention` blocks per model config (blocks may overlap on several threads)."""
_ACTIVE_LOCK = threading.Lock()


@contextmanager
def grouped_query_attention(model: Any) -> Iterator[bool]:
    """Run ``model``'s ``sdpa`` attention with shared key/value heads inside the block; yield whether it did.

    Models with another attention implementation, or not on a CPU, are left as they are. Blocks
    on the same model may overlap (scoring and generation side by side on two threads): the
    original comes back when the last one closes.
    """
    config = getattr(model, "config", None)
    with _ACTIVE_LOCK:
        switched = _ACTIVE.get(id(config), 0) > 0 or applies_to(model)
        if switched:
            _register()
            config._attn_implementation = GQA_SDPA
            _ACTIVE[id(config)] = _ACTIVE.get(id(config), 0) + 1
    try:
        yield switched
    finally:
        if switched:
            with _ACTIVE_LOCK:
                _ACTIVE[id(config)] -= 1
                if not _ACTIVE[id(config)]:
                    del _ACTIVE[id(config)]
                    config._attn_implementation = "sdpa"
