"""A light alignment adapter in pooled space: a residual linear map trained with a registered alignment loss.

The student is the frozen model's pooled vector of a target-language text passed through
``x + x W^T + b`` (``W`` and ``b`` start at zero, so the adapter starts as the identity); the
teacher is the frozen model's pooled vector of the high-resource translation. Any registered
alignment loss (``mse``, ``cosine``, ``kl``, ``infonce``, plugins) trains ``W`` and ``b``; for
losses that compare output distributions (``kl``) the pooled vectors are read through the
model's final norm and LM head (the "logit lens"), supplied as ``log_probs_of``.

Both sides are computed once (the backbone is frozen), so training costs seconds on a CPU and
1,000 pairs are affordable where training a soft prompt through the whole backbone is not. A task
head trained on the teacher's (high-resource) vectors then reads ``adapter(student vectors)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lowres_adapters.specs import AlignmentInputs
from lowres_adapters.training.alignment import build_alignment_loss


class PooledAdapter(nn.Module):
    """``x + x W^T + b`` on ``(batch, dim)`` vectors, identity at initialisation.

    Args:
        dim: Width of the pooled vectors.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """Return the mapped ``(batch, dim)`` vectors."""
        return vectors + self.linear(vectors)


@dataclass(frozen=True)
class PooledAlignmentSettings:
    """How the pooled adapter trains.

    Attributes:
        steps: Optimiser steps.
        lr: Adam learning rate.
        batch_size: Pairs per step (InfoNCE's negatives are the other pairs of the batch).
        weight_decay: Decoupled weight decay on ``W`` (keeps the map near the identity with few pairs).
    """

    steps: int = 300
    lr: float = 1e-2
    batch_size: int = 64
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be >= 1 and batch_size >= 2")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")


def train_pooled_adapter(student: torch.Tensor, teacher: torch.Tensor, loss_name: str,
                         loss_config: Mapping[str, Any] | None = None, *, seed: int = 0,
                         settings: PooledAlignmentSettings = PooledAlignmentSettings(),
                         log_probs_of: Callable[[torch.Tensor], torch.Tensor] | None = None) -> PooledAdapter:
    """Train a :class:`PooledAdapter` mapping ``student`` rows towards their ``teacher`` rows.

    Args:
        student: ``(pairs, dim)`` pooled vectors of the target-language texts (frozen model).
        teacher: ``(pairs, dim)`` pooled vectors of their high-resource translations.
        loss_name: A registered alignment loss.
        loss_config: Settings of that loss's config.
        seed: Seed of the batch order.
        settings: Steps, learning rate, batch size, weight decay.
        log_probs_of: ``(batch, dim) -> (batch, vocab)`` log-probabilities; required by losses
            that read distributions (``kl``).

    Raises:
        ValueError: When the shapes differ, or the loss needs distributions and ``log_probs_of`` is None.
    """
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} must be equal (pairs, dim)")
    loss_fn, needs_log_probs = build_alignment_loss(loss_name, loss_config or {})
    if needs_log_probs and log_probs_of is None:
        raise ValueError(f"alignment loss {loss_name!r} compares distributions: pass log_probs_of")
    generator = torch.Generator().manual_seed(seed)
    adapter = PooledAdapter(student.shape[1])
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    student, teacher = student.float(), teacher.float().detach()
    teacher_log_probs = log_probs_of(teacher).detach() if needs_log_probs and log_probs_of else None
    size = min(settings.batch_size, student.shape[0])
    order = torch.randperm(student.shape[0], generator=generator)
    cursor = 0
    for _ in range(settings.steps):
        if cursor + size > len(order):
            order, cursor = torch.randperm(student.shape[0], generator=generator), 0
        rows = order[cursor: cursor + size]
        cursor += size
        mapped = adapter(student[rows])  # (batch, dim)
        inputs = AlignmentInputs(student_pooled=mapped, teacher_pooled=teacher[rows],
                                 student_log_probs=log_probs_of(mapped) if needs_log_probs and log_probs_of else None,
                                 teacher_log_probs=None if teacher_log_probs is None else teacher_log_probs[rows])
        loss = loss_fn(inputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapter.eval()
    return adapter
