"""Learning-rate schedules: linear warm-up, then cosine, linear or constant."""

from __future__ import annotations

import math
from typing import Callable

import torch


def lr_multiplier(schedule: str, total_steps: int, warmup_steps: int,
                  min_lr_ratio: float = 0.0) -> Callable[[int], float]:
    """Return ``f(step) -> multiplier of the peak lr`` for the optimiser step ``step`` (0-based).

    Warm-up rises linearly from ``1 / (warmup_steps + 1)`` to 1; afterwards ``"cosine"`` and
    ``"linear"`` decay to ``min_lr_ratio`` at ``total_steps`` and ``"constant"`` stays at 1.
    """
    if schedule not in ("cosine", "linear", "constant"):
        raise ValueError(f"unknown schedule {schedule!r}")
    decay_steps = max(1, total_steps - warmup_steps)

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        if schedule == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return min_lr_ratio + (1.0 - min_lr_ratio) * shape

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int, warmup_steps: int,
                    min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a ``LambdaLR`` following :func:`lr_multiplier` (its state resumes with the checkpoint)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(schedule, total_steps, warmup_steps, min_lr_ratio)
    )
