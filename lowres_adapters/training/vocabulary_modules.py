"""Embedding and output layers with new vocabulary rows kept apart from the frozen original rows.

The original matrix stays untouched and frozen; the new rows are a separate ``nn.Parameter``, so
only they train (no gradient masking, no weight decay leaking into old rows) and only they are
saved. ``weight`` (and ``bias``) expose the full, concatenated matrix for code that reads them
(soft-prompt initialisation, vocabulary-trimmed losses), with gradients flowing to the new rows.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class ExtendedEmbedding(nn.Module):
    """Input embeddings = frozen original rows followed by trainable new rows.

    Args:
        original: The model's ``nn.Embedding`` (vocabulary ``original_size``).
        new_rows: (added, hidden) parameter for ids ``original_size ...``; may be shared with a
            tied :class:`ExtendedOutputHead`.
    """

    def __init__(self, original: nn.Embedding, new_rows: nn.Parameter) -> None:
        super().__init__()
        self.original = original
        self.new_rows = new_rows
        self.original_size = original.num_embeddings
        self.padding_idx = original.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        """Return the full (original + added, hidden) matrix."""
        return torch.cat([self.original.weight, self.new_rows.to(self.original.weight.dtype)], dim=0)

    @property
    def num_embeddings(self) -> int:
        """Return the extended vocabulary size."""
        return self.original_size + self.new_rows.shape[0]

    @property
    def embedding_dim(self) -> int:
        """Return the hidden width."""
        return self.original.embedding_dim

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Return (batch, seq, hidden) embeddings; ids past the original vocabulary use the new rows."""
        is_new = input_ids >= self.original_size  # (batch, seq)
        embedded = self.original(input_ids.masked_fill(is_new, 0))  # (batch, seq, hidden)
        if not bool(is_new.any()):
            return embedded
        new_index = (input_ids - self.original_size).clamp(min=0)  # (batch, seq)
        new_embedded = functional.embedding(new_index, self.new_rows).to(embedded.dtype)  # (batch, seq, hidden)
        scale = getattr(self.original, "embed_scale", None)  # scaled embeddings (e.g. Gemma) scale both
        if scale is not None:
            new_embedded = new_embedded * scale
        return torch.where(is_new.unsqueeze(-1), new_embedded, embedded)


class ExtendedOutputHead(nn.Module):
    """Output projection = frozen original rows followed by new rows: logits over the extended vocabulary.

    Args:
        original: The model's output ``nn.Linear`` (``out_features`` = original vocabulary).
        new_rows: (added, hidden) parameter; the input embedding's when the model ties them.
        new_bias: (added,) bias of the new rows when the original has a bias (not trained).
    """

    def __init__(self, original: nn.Linear, new_rows: nn.Parameter, new_bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.original = original
        self.new_rows = new_rows
        if original.bias is not None:
            if new_bias is None:
                new_bias = torch.zeros(new_rows.shape[0], dtype=original.bias.dtype, device=original.bias.device)
            self.register_buffer("new_bias", new_bias.detach().clone(), persistent=False)
        else:
            self.new_bias = None

    @property
    def weight(self) -> torch.Tensor:
        """Return the full (original + added, hidden) matrix."""
        return torch.cat([self.original.weight, self.new_rows.to(self.original.weight.dtype)], dim=0)

    @property
    def bias(self) -> torch.Tensor | None:
        """Return the full bias, or None when the original layer has none."""
        if self.original.bias is None:
            return None
        return torch.cat([self.original.bias, self.new_bias.to(self.original.bias.dtype)], dim=0)

    @property
    def out_features(self) -> int:
        """Return the extended vocabulary size."""
        return self.original.out_features + self.new_rows.shape[0]

    @property
    def in_features(self) -> int:
        """Return the hidden width."""
        return self.original.in_features

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Return (..., original + added) logits."""
        original_logits = self.original(hidden)  # (..., original)
        new_logits = functional.linear(hidden, self.new_rows.to(hidden.dtype),
                                       None if self.new_bias is None else self.new_bias.to(hidden.dtype))
        return torch.cat([original_logits, new_logits.to(original_logits.dtype)], dim=-1)  # (..., original + added)


def replace_module(root: nn.Module, target: nn.Module, replacement: nn.Module) -> str:
    """Put ``replacement`` where ``target`` sits inside ``root``, keeping ``target``'s forward hooks.

    Hooks are carried over because libraries such as ``adapters`` hook the embedding layer
    (invertible adapters) when they are initialised.

    Returns:
        The dotted path of the replaced module.
    """
    for path, module in root.named_modules():
        if module is target and path:
            parent_path, _, attribute = path.rpartition(".")
            parent = root.get_submodule(parent_path) if parent_path else root
            setattr(parent, attribute, replacement)
            for hook_id, hook in target._forward_hooks.items():
                replacement._forward_hooks[hook_id] = hook
            for hook_id, hook in target._forward_pre_hooks.items():
                replacement._forward_pre_hooks[hook_id] = hook
            return path
    raise ValueError(f"{type(target).__name__} is not a submodule of {type(root).__name__}")
