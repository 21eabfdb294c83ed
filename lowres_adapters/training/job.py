"""What a recipe hands the loop (:class:`TrainingJob`) and what the loop hands back.

Defined here so recipes and speed options can build jobs without importing the loop itself;
:mod:`lowres_adapters.training.loop` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from lowres_adapters.training.batching import Collator
from lowres_adapters.training.objectives import LossFn, count_input_tokens


@dataclass
class TrainingJob:
    """What a recipe hands the loop.

    Attributes:
        model: The module ``loss_fn`` is called with (``handle.model``).
        parameters: Exactly the parameters that train, by name; everything else in ``model``
            is frozen by the loop.
        train_features: Tokenised training examples (see :mod:`~lowres_adapters.training.batching`).
        collate: ``collate(features, generator) -> batch``.
        loss_fn: ``loss_fn(model, batch) -> (mean loss over predicted tokens, n_predicted_tokens)``.
        eval_features: Validation features for the periodic evaluation (the first
            ``eval_examples`` are used), or None.
        name: Label of the progress bar (e.g. the stage name).
        freezing: One line saying what trains, printed at start.
        count_tokens: ``count_tokens(batch) -> int`` real input tokens, for tokens/s.
    """

    model: torch.nn.Module
    parameters: Mapping[str, torch.nn.Parameter]
    train_features: Sequence[Mapping[str, Any]]
    collate: Collator
    loss_fn: LossFn
    eval_features: Sequence[Mapping[str, Any]] | None = None
    name: str = "train"
    freezing: str = "adapter only"
    count_tokens: Callable[[Mapping[str, Any]], int] = count_input_tokens


@dataclass
class StepReport:
    """What callbacks receive after each optimiser step."""

    step: int
    total_steps: int
    loss: float
    lr: float
    tokens_seen: int
    eval_loss: float | None = None


@dataclass
class LoopResult:
    """How a training run went.

    Attributes:
        steps: Optimiser steps done in total (including those before a resume).
        total_steps: Steps the run was set to do.
        final_loss: Training loss of the last step (NaN when no step ran in this process).
        eval_loss: Validation loss at the end, or None without validation data.
        best_eval_loss: Lowest validation loss seen, or None.
        best_step: Step of the best validation loss.
        stopped_early: True when early stopping ended the run.
        resumed_from: Step of the checkpoint the run resumed from, or None.
        seconds: Training time (across resumes).
        tokens_seen: Real input tokens processed (all processes).
        trainable_parameters: Number of trained parameters.
        total_parameters: Number of parameters of the model.
    """

    steps: int
    total_steps: int
    final_loss: float
    eval_loss: float | None
    best_eval_loss: float | None
    best_step: int | None
    stopped_early: bool
    resumed_from: int | None
    seconds: float
    tokens_seen: int
    trainable_parameters: int
    total_parameters: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Return real input tokens processed per second of training."""
        return self.tokens_seen / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (without the history)."""
        return {
            "steps": self.steps, "total_steps": self.total_steps, "final_loss": self.final_loss,
            "eval_loss": self.eval_loss, "best_eval_loss": self.best_eval_loss, "best_step": self.best_step,
            "stopped_early": self.stopped_early, "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 3), "tokens_seen": self.tokens_seen,
            "tokens_per_second": round(self.tokens_per_second, 1),
            "trainable_parameters": self.trainable_parameters, "total_parameters": self.total_parameters,
        }
