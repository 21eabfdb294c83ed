"""Knowledge alignment: pool hidden states, run the frozen teacher, combine task and alignment losses.

The student is the adapted model (soft prompt and/or light adapter) reading target-language text;
the teacher is the *same* base weights with the adapter switched off through its handle
(``with handle.disabled():``, the adapter-handle contract), reading the high-resource side of the
pair. A type whose handle cannot switch itself off is refused in one line before training. The teacher runs under ``torch.no_grad()`` in eval mode, so it holds no
gradients, no optimiser state and no second copy of the weights. Its pooled outputs are cached
per training example (it is frozen and deterministic), which makes the few-label regime, where
the same 10-100 examples come round every few steps, cost one forward pass per step.

``loss = task_loss + align_weight * align_loss`` (see docs/transfer.md for the exact choices).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch

from lowres_adapters.configs import config_from_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.retrieval import content_mask, top1_accuracy
from lowres_adapters.handles import CannotDisable
from lowres_adapters.registry import get_registry
from lowres_adapters.specs import AlignmentInputs
from lowres_adapters.training.heads import pool_sequence

TEACHER_PREFIX = "teacher_"
"""Batch keys of the teacher's inputs: ``teacher_input_ids``, ``teacher_attention_mask``."""


def pool_log_probs(logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Reduce ``(batch, seq, vocab)`` logits to ``(batch, vocab)`` log-probabilities.

    ``mean`` averages the next-token distributions over the real tokens (a bag of predicted
    tokens: parallel texts of different lengths share no positions); ``first`` / ``last`` take
    one position's distribution.
    """
    if pooling == "mean":
        probabilities = torch.softmax(logits.float(), dim=-1)  # (batch, seq, vocab)
        pooled = pool_sequence(probabilities, attention_mask, "mean")  # (batch, vocab)
        return torch.log(pooled.clamp_min(1e-12))
    return torch.log_softmax(pool_sequence(logits.float(), attention_mask, pooling), dim=-1)  # (batch, vocab)


def require_disabling(handle: Any, needed_for: str) -> None:
    """Refuse, in one line, an adapter whose handle cannot switch itself off (``handle.disabled()``).

    Args:
        handle: The attached adapter.
        needed_for: What needs the bare base model, for the message (e.g. "prompt-align's frozen teacher").
    """
    disabled = getattr(handle, "disabled", None)
    try:
        if disabled is None:
            raise CannotDisable("its handle has no disabled() method")
        with disabled():
            pass
    except CannotDisable as error:
        raise LowresError(f"{needed_for} needs the bare base model, but adapter {handle.name!r} cannot switch "
                          f"itself off ({error}); choose a type that can (seq_bn, lora, prompt_tuning, ...)") from None


@contextlib.contextmanager
def teacher_mode(handle: Any | None, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Yield the module computing the frozen teacher: ``handle.model`` with the adapter switched off
    (``handle.disabled()``) and in eval mode (no dropout), or ``model`` itself when no adapter is
    attached yet (scoring the base). Training mode is restored afterwards."""
    teacher = model if handle is None else handle.model
    was_training = teacher.training
    switched_off = contextlib.nullcontext() if handle is None else handle.disabled()
    try:
        teacher.eval()
        with switched_off:
            yield teacher
    finally:
        teacher.train(was_training)


def check_frozen_backbone(base_parameter_ids: set[int], trained: Mapping[str, torch.nn.Parameter]) -> None:
    """Raise when a trained parameter is a base weight: the teacher would no longer be the original model.

    Args:
        base_parameter_ids: ``id()`` of every parameter of the base model before adapters were attached.
        trained: The parameters the run trains.
    """
    shared = sorted(name for name, parameter in trained.items() if id(parameter) in base_parameter_ids)
    if shared:
        raise LowresError(f"prompt + alignment needs a frozen backbone, but the run trains base weights "
                          f"({', '.join(shared[:3])}{' ...' if len(shared) > 3 else ''}); choose an adapter "
                          "type that adds parameters (prompt_tuning, seq_bn, lora, ...)")


@dataclass
class SideOutputs:
    """Pooled outputs of one side (student or teacher) for a batch."""

    pooled: torch.Tensor
    log_probs: torch.Tensor | None = None


def _forward_hidden(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    layer: int) -> tuple[torch.Tensor, Any]:
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden_states = outputs.hidden_states
    if not -len(hidden_states) <= layer < len(hidden_states):
        raise LowresError(f"align_layer {layer} is out of range: the model returns {len(hidden_states)} "
                          "hidden states (embeddings + one per layer)")
    return hidden_states[layer], outputs


@dataclass
class AlignmentObjective:
    """The alignment part of the loss: student vs frozen teacher, pooled, through a registered loss.

    Attributes:
        loss_fn: A built alignment loss (``AlignmentLoss.build(config)``).
        needs_log_probs: Whether ``loss_fn`` reads output distributions.
        handle: The attached adapter; the teacher is its model inside ``handle.disabled()``.
            None before any adapter is attached: the teacher is then ``base_model``.
        pooling: ``mean``, ``first`` or ``last``.
        layer: Index into ``hidden_states`` (-1 = last layer).
        skip_first: Real tokens left out of the pooling at the start of each text (1 = the BOS /
            attention-sink position of a decoder, whose state is the same for every text and
            thousands of times larger than the others in middle layers; see docs/transfer.md).
        base_model: The model to use as teacher when ``handle`` is None.
        cache_limit: Cache teacher outputs of at most this many distinct examples (0 = no cache).
    """

    loss_fn: Callable[[AlignmentInputs], torch.Tensor]
    needs_log_probs: bool
    handle: Any | None
    pooling: str = "mean"
    layer: int = -1
    skip_first: int = 0
    base_model: torch.nn.Module | None = None
    cache_limit: int = 4096
    _cache: dict[int, SideOutputs] = field(default_factory=dict, repr=False)

    def student_side(self, model: torch.nn.Module, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> tuple[SideOutputs, Any]:
        """Return the student's pooled outputs (with gradients) and its raw model outputs."""
        hidden, outputs = _forward_hidden(model, input_ids, attention_mask, self.layer)
        content = content_mask(attention_mask, self.skip_first)  # (batch, seq)
        pooled = pool_sequence(hidden, content, self.pooling)  # (batch, hidden)
        log_probs = pool_log_probs(outputs.logits, content, self.pooling) if self.needs_log_probs else None
        return SideOutputs(pooled, log_probs), outputs

    @torch.no_grad()
    def teacher_side(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     example_ids: torch.Tensor | None = None) -> SideOutputs:
        """Return the frozen teacher's pooled outputs, from the cache where possible."""
        keys = example_ids.tolist() if example_ids is not None and self.cache_limit else None
        if keys is not None and all(key in self._cache for key in keys):
            return _stack([self._cache[key] for key in keys])
        with teacher_mode(self.handle, self.base_model) as teacher:
            hidden, outputs = _forward_hidden(teacher, input_ids, attention_mask, self.layer)
            content = content_mask(attention_mask, self.skip_first)  # (batch, seq)
            pooled = pool_sequence(hidden, content, self.pooling).detach()  # (batch, hidden)
            log_probs = (pool_log_probs(outputs.logits, content, self.pooling).detach()
                         if self.needs_log_probs else None)
        side = SideOutputs(pooled, log_probs)
        if keys is not None:
            for row, key in enumerate(keys):
                if len(self._cache) < self.cache_limit:
                    self._cache[key] = SideOutputs(pooled[row], None if log_probs is None else log_probs[row])
        return side

    def loss(self, student: SideOutputs, teacher: SideOutputs) -> torch.Tensor:
        """Return the alignment loss of a batch."""
        return self.loss_fn(AlignmentInputs(student_pooled=student.pooled, teacher_pooled=teacher.pooled,
                                            student_log_probs=student.log_probs,
                                            teacher_log_probs=teacher.log_probs))


def _stack(sides: list[SideOutputs]) -> SideOutputs:
    pooled = torch.stack([side.pooled for side in sides])  # (batch, hidden)
    log_probs = None if sides[0].log_probs is None else torch.stack([side.log_probs for side in sides])
    return SideOutputs(pooled, log_probs)


def build_alignment_loss(name: str, settings: Mapping[str, Any]) -> tuple[Callable[[AlignmentInputs], torch.Tensor], bool]:
    """Return ``(loss_fn, needs_log_probs)`` for the registered alignment loss ``name``.

    Raises:
        LowresError: For an unknown loss (listing the installed ones) or a bad setting.
    """
    spec = get_registry().alignment_loss(name)
    config = config_from_dict(spec.config_class, dict(settings), where=f"align_config for {name}")
    return spec.build(config), spec.needs_log_probs


def retrieval_accuracy(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Return the share of rows whose most cosine-similar teacher row is their own pair (top-1)."""
    return top1_accuracy(student, teacher)
