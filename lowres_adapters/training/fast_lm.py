"""Language-modelling losses that skip the work a plain forward wastes.

A plain ``model(**batch, labels=...)`` scores every position against the whole vocabulary. For a
masked LM only the ~15% masked positions carry a label, and a low-resource corpus uses a small part of
a 250k-token vocabulary. The losses here:

- run the model body once, gather the hidden states at labelled positions only, and apply the LM head
  to those rows (``masked_only_logits``; for causal LMs the padding positions are skipped the same way);
- optionally score only the token ids a corpus uses (:class:`VocabularyTrim`): the used rows of the
  output layer (and its bias) are gathered each step, labels are mapped into that smaller range, and
  nothing in the model changes, so a saved adapter works with the original base model unchanged;
- optionally split the output projection into chunks recomputed in the backward pass
  (``chunk_size``), so the ``(tokens, vocab)`` logits never exist all at once.

Every function has the same contract as the training loop's ``loss_fn(model, batch) -> (loss,
n_tokens)``: ``loss`` is the mean cross-entropy over the scored tokens. With no trimming the result
equals the plain forward's loss (tests pin this within float tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

from lowres_adapters.errors import LowresError

IGNORE_INDEX = -100
BODY_KEYS = ("input_ids", "attention_mask", "position_ids", "token_type_ids")


@dataclass(frozen=True)
class VocabularyTrim:
    """The token ids a corpus uses, and the map from original ids to positions among them.

    With ``negatives`` > 0, every scoring also draws that many of the dropped ids at random and
    adds them to the softmax with their logits raised by ``log(dropped / negatives)`` (sampled
    softmax with a uniform proposal): the denominator then estimates the full vocabulary's, so
    training still pushes down tokens the corpus never uses. With every dropped id drawn, the loss
    is exactly the full-vocabulary loss.

    With ``widen_to_targets``, a scoring whose targets include ids that are not kept keeps them too,
    for that scoring only (:meth:`covering`): the trim of a corpus whose later part is not read yet
    (a text still being tokenised) scores every target, and its softmax depends only on the kept
    ids and the batch.

    Attributes:
        kept_ids: ``(kept,)`` sorted original token ids that are scored.
        position_of: ``(vocab,)`` original id -> index into ``kept_ids``, or -1 when not kept.
        negatives: Dropped ids drawn per scoring (0: none).
        widen_to_targets: Keep a scoring's targets too (else a target that is not kept is an error).
    """

    kept_ids: torch.Tensor
    position_of: torch.Tensor
    negatives: int = 0
    widen_to_targets: bool = False

    @property
    def dropped_ids(self) -> torch.Tensor:
        """Return ``(dropped,)`` the original ids that are not kept."""
        return torch.nonzero(self.position_of < 0).reshape(-1)

    def with_negatives(self, negatives: int) -> "VocabularyTrim":
        """Return this trim drawing ``negatives`` dropped ids per scoring (capped at all of them)."""
        if negatives < 0:
            raise LowresError(f"negatives must be >= 0, got {negatives}")
        dropped = int((self.position_of < 0).sum())
        return VocabularyTrim(self.kept_ids, self.position_of, min(negatives, dropped), self.widen_to_targets)

    def covering(self, targets: torch.Tensor) -> "VocabularyTrim":
        """Return this trim keeping every id of ``targets`` too when ``widen_to_targets`` (else itself)."""
        if not self.widen_to_targets:
            return self
        missing = targets[self.position_of.to(targets.device)[targets] < 0]  # (missing,)
        if not missing.numel():
            return self
        seen = self.position_of >= 0  # (vocab,)
        seen[missing.unique().to(seen.device)] = True
        kept_ids = torch.nonzero(seen).reshape(-1)  # (kept,)
        position_of = torch.full_like(self.position_of, -1)
        position_of[kept_ids] = torch.arange(kept_ids.numel())
        dropped = int((position_of < 0).sum())
        return VocabularyTrim(kept_ids, position_of, min(self.negatives, dropped), widen_to_targets=True)

    @classmethod
    def from_token_ids(
        cls, token_ids: Iterable[Iterable[int]] | torch.Tensor, vocab_size: int,
        always_keep: Iterable[int] = (),
    ) -> "VocabularyTrim":
        """Build a trim from every id seen in ``token_ids`` plus ``always_keep``.

        Args:
            token_ids: Tokenised examples (lists of ids) or one tensor of ids.
            vocab_size: Size of the model's output layer.
            always_keep: Extra ids to score even if unseen (e.g. special tokens).
        """
        seen = torch.zeros(vocab_size, dtype=torch.bool)
        if isinstance(token_ids, torch.Tensor):
            chunks: Iterable[Any] = [token_ids.reshape(-1)]
        else:
            chunks = token_ids
        for chunk in chunks:
            ids = torch.as_tensor(chunk, dtype=torch.long).reshape(-1)  # (n,)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
                raise LowresError(f"token id outside the vocabulary of {vocab_size} while trimming it")
            seen[ids] = True
        extra = torch.as_tensor(list(always_keep), dtype=torch.long)
        if extra.numel():
            seen[extra] = True
        kept_ids = torch.nonzero(seen).reshape(-1)  # (kept,)
        position_of = torch.full((vocab_size,), -1, dtype=torch.long)
        position_of[kept_ids] = torch.arange(kept_ids.numel())
        return cls(kept_ids=kept_ids, position_of=position_of)

    @property
    def size(self) -> int:
        """Return how many token ids are scored."""
        return int(self.kept_ids.numel())

    def map_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Map original target ids to positions among the kept ids.

        Raises:
            LowresError: A target id is not among the kept ids (the trim came from another corpus).
        """
        mapped = self.position_of.to(targets.device)[targets]
        if bool((mapped < 0).any()):
            missing = targets[mapped < 0][:5].tolist()
            raise LowresError(f"target token ids {missing} are not in the trimmed vocabulary; "
                              "build the trim from the corpus you train on")
        return mapped


@dataclass(frozen=True)
class LMHeadParts:
    """A language model split into body, head transform and output layer.

    Attributes:
        body: The base model; ``body(**inputs)[0]`` is ``(batch, seq, hidden)``.
        transform: What the head does before the output layer (None when the head is only that layer).
        output_layer: The ``nn.Linear`` scoring the vocabulary (maybe tied to the input embeddings).
    """

    body: nn.Module
    transform: Callable[[torch.Tensor], torch.Tensor] | None
    output_layer: nn.Linear


def split_lm_model(model: nn.Module) -> LMHeadParts:
    """Split a transformers LM (``*ForMaskedLM`` / ``*ForCausalLM``) into its parts.

    Works for heads that are the output layer itself (Llama, ...) and for heads that transform the
    hidden state first (XLM-R's ``lm_head``, BERT's ``cls``): the transform is the head's own forward
    with the output layer bypassed. A model wrapper (a PEFT model, a soft-prompt wrapper) is unwrapped
    through ``get_base_model()`` when it has one.

    Raises:
        LowresError: The model has no output embeddings or no base model.
    """
    config = getattr(model, "active_peft_config", None)
    if config is not None and getattr(config, "is_prompt_learning", False):
        raise LowresError("a PEFT prompt-learning model adds tokens in its wrapper; use the plain loss")
    if callable(getattr(model, "get_base_model", None)):  # a PEFT (or PEFT-style) wrapper
        model = model.get_base_model()
    if not isinstance(model, PreTrainedModel):  # e.g. a soft-prompt wrapper: its forward does more
        raise LowresError(f"{type(model).__name__} is not a transformers model; use the plain loss")
    output_layer = model.get_output_embeddings()
    body = getattr(model, "base_model", None)
    if not isinstance(output_layer, nn.Linear) or body is None or body is model:
        raise LowresError(f"{type(model).__name__} has no separable LM head; use the plain loss")
    head_name, head = _head_holding(model, output_layer, body)
    if head is output_layer:
        return LMHeadParts(body=body, transform=None, output_layer=output_layer)
    return LMHeadParts(body=body, transform=_BypassedHead(head, output_layer), output_layer=output_layer)


def _head_holding(model: nn.Module, output_layer: nn.Module, body: nn.Module) -> tuple[str, nn.Module]:
    for name, child in model.named_children():
        if child is body:
            continue
        if child is output_layer or any(module is output_layer for module in child.modules()):
            return name, child
    raise LowresError(f"cannot find the LM head of {type(model).__name__}")


class _BypassedHead:
    """Call an LM head with its output layer replaced by the identity."""

    def __init__(self, head: nn.Module, output_layer: nn.Module) -> None:
        self.head = head
        self.parent, self.attribute = _parent_of(head, output_layer)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        original = getattr(self.parent, self.attribute)
        # Module.__setattr__ keeps the registered child in _modules, so swap it there and restore.
        self.parent._modules[self.attribute] = nn.Identity()
        try:
            return self.head(hidden)
        finally:
            self.parent._modules[self.attribute] = original


def _parent_of(root: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for module in root.modules():
        for name, child in module.named_children():
            if child is target:
                return module, name
    raise LowresError("the output layer is not inside the LM head")


def output_logits(
    parts: LMHeadParts, hidden: torch.Tensor, trim: VocabularyTrim | None = None,
) -> torch.Tensor:
    """Score ``(n, hidden)`` gathered hidden states.

    Returns:
        ``(n, vocab)`` logits; with ``trim``, ``(n, trim.size + trim.negatives)``: the kept ids in
        order, then the drawn negatives (already corrected for sampling).
    """
    if parts.transform is not None:
        hidden = parts.transform(hidden)
    layer = parts.output_layer
    for hook in layer._forward_pre_hooks.values():  # e.g. AdapterHub's inverse invertible adapter
        result = hook(layer, (hidden,))
        if result is not None:
            hidden = result[0] if isinstance(result, tuple) else result
    weight, bias = layer.weight, layer.bias
    if trim is None:
        return F.linear(hidden, weight, bias)
    rows = trim.kept_ids
    if trim.negatives:
        dropped = trim.dropped_ids
        drawn = dropped[torch.randperm(dropped.numel())[: trim.negatives]]  # (negatives,)
        rows = torch.cat([rows, drawn])
    rows = rows.to(weight.device)
    weight = weight.index_select(0, rows)  # (kept + negatives, hidden)
    bias = bias.index_select(0, rows) if bias is not None else None
    logits = F.linear(hidden, weight, bias)  # (n, kept + negatives)
    if trim.negatives:
        correction = torch.zeros(rows.numel(), dtype=logits.dtype, device=logits.device)
        correction[trim.size:] = math.log(trim.dropped_ids.numel() / trim.negatives)
        logits = logits + correction
    return logits


def body_hidden(parts: LMHeadParts, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Return the body's last hidden states ``(batch, seq, hidden)`` for a plain or packed batch."""
    inputs = {key: batch[key] for key in BODY_KEYS if key in batch and batch[key] is not None}
    if hasattr(parts.body.config, "use_cache"):
        # Without a cache, decoders read example boundaries from restarted position_ids (packing).
        inputs["use_cache"] = False
    outputs = parts.body(**inputs, return_dict=True)
    return outputs.last_hidden_state  # (batch, seq, hidden)


def _scored_loss(
    parts: LMHeadParts, hidden: torch.Tensor, targets: torch.Tensor,
    trim: VocabularyTrim | None, chunk_size: int | None,
) -> torch.Tensor:
    """Return the summed cross-entropy of ``(n, hidden)`` rows against ``(n,)`` original ids."""
    if trim is not None:
        trim = trim.covering(targets)
        targets = trim.map_targets(targets)
    if chunk_size is None or hidden.shape[0] <= chunk_size:
        return F.cross_entropy(output_logits(parts, hidden, trim).float(), targets, reduction="sum")

    def chunk_loss(rows: torch.Tensor, chunk_targets: torch.Tensor) -> torch.Tensor:
        logits = output_logits(parts, rows, trim).float()  # (chunk, vocab)
        return F.cross_entropy(logits, chunk_targets, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk_size):
        stop = start + chunk_size
        total = total + checkpoint(chunk_loss, hidden[start:stop], targets[start:stop], use_reentrant=False)
    return total


def masked_lm_loss(
    model: nn.Module, batch: Mapping[str, torch.Tensor], *,
    trim: VocabularyTrim | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Return the masked-LM loss computed only at labelled (masked) positions.

    Args:
        model: A ``*ForMaskedLM`` model (adapters attached are fine).
        batch: ``input_ids``, ``labels`` (-100 where not masked), optional ``attention_mask``,
            ``position_ids``.
        trim: Score only these token ids.
        chunk_size: Score at most this many positions at a time (recomputed in backward).

    Returns:
        ``(mean loss over masked tokens, number of masked tokens)``.
    """
    parts = split_lm_model(model)
    hidden = body_hidden(parts, batch)  # (batch, seq, hidden)
    labels = batch["labels"]
    selected = labels != IGNORE_INDEX  # (batch, seq)
    n_tokens = int(selected.sum())
    if n_tokens == 0:
        return hidden.sum() * 0.0, 0
    total = _scored_loss(parts, hidden[selected], labels[selected], trim, chunk_size)  # rows: (n, hidden)
    return total / n_tokens, n_tokens


def causal_lm_loss(
    model: nn.Module, batch: Mapping[str, torch.Tensor], *,
    trim: VocabularyTrim | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Return the next-token loss computed only at positions whose next token is labelled.

    Labels follow transformers' convention (``labels == input_ids`` with -100 to ignore; the shift
    happens here), so the result equals ``model(**batch).loss`` when nothing is trimmed.

    Args:
        model: A ``*ForCausalLM`` model.
        batch: ``input_ids``, ``labels``, optional ``attention_mask``, ``position_ids``.
        trim: Score only these token ids.
        chunk_size: Score at most this many positions at a time (recomputed in backward).

    Returns:
        ``(mean loss over predicted tokens, number of predicted tokens)``.
    """
    parts = split_lm_model(model)
    hidden = body_hidden(parts, batch)  # (batch, seq, hidden)
    next_labels = batch["labels"][:, 1:]  # (batch, seq - 1)
    selected = next_labels != IGNORE_INDEX
    n_tokens = int(selected.sum())
    if n_tokens == 0:
        return hidden.sum() * 0.0, 0
    rows = hidden[:, :-1][selected]  # (n, hidden)
    total = _scored_loss(parts, rows, next_labels[selected], trim, chunk_size)
    return total / n_tokens, n_tokens


def _model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: batch[key] for key in (*BODY_KEYS, "labels") if key in batch and batch[key] is not None}


def plain_lm_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Return the plain forward's masked-LM loss (logits at every position, whole vocabulary)."""
    outputs = model(**_model_inputs(batch))
    return outputs.loss, int((batch["labels"] != IGNORE_INDEX).sum())


def plain_causal_lm_loss(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Return the plain forward's causal-LM loss (logits at every position, whole vocabulary)."""
    # Without a cache the decoder reads packed examples' boundaries from position_ids.
    outputs = model(**_model_inputs(batch), use_cache=False)
    return outputs.loss, int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
