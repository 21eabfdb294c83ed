"""The loop's settings, one small frozen dataclass per concern, and the flat view users set.

Each concern owns its fields, their defaults and their checks: :class:`OptimizerSettings`,
:class:`ScheduleSettings`, :class:`EvaluationSettings`, :class:`CheckpointSettings`,
:class:`SpeedSettings` and :class:`BatchSettings`. :class:`LoopSettings` is built from them: its
fields are theirs (same names, same defaults, so ``--set loop.lr=...``, config files and
``run_config.json`` keep their flat keys), and ``loop.optimizer``, ``loop.schedule``, ... return
the concern objects. Nothing states a default twice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lowres_adapters.training.typed_settings import InvalidSetting

SCHEDULES = ("cosine", "linear", "constant")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidSetting(message)


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW and gradient clipping.

    Attributes:
        lr: Peak learning rate (AdamW).
        weight_decay: AdamW decoupled weight decay.
        adam_beta1: AdamW beta1.
        adam_beta2: AdamW beta2.
        adam_eps: AdamW epsilon.
        max_grad_norm: Clip the gradient norm of the trained parameters to this; None disables.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr must be > 0")
        _check(self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "adam betas must be in [0, 1)")
        _check(self.adam_eps > 0, "adam_eps must be > 0")
        _check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm must be > 0")


@dataclass(frozen=True)
class ScheduleSettings:
    """How long to train and how the learning rate moves.

    Attributes:
        max_steps: Optimiser steps to run; None or 0 derives them from ``epochs``.
        epochs: Passes over the training examples, used when ``max_steps`` is None or 0.
        schedule: ``"cosine"``, ``"linear"`` (decay to ``min_lr_ratio`` x lr) or ``"constant"``.
        warmup_ratio: Share of the steps with a linear warm-up from 0 (ignored if ``warmup_steps``).
        warmup_steps: Warm-up steps; None uses ``warmup_ratio``.
        min_lr_ratio: Final learning rate as a share of ``lr`` for the decaying schedules.
    """

    max_steps: int | None = None
    epochs: float = 1.0
    schedule: str = "cosine"
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        _check(self.max_steps is None or self.max_steps >= 0, "max_steps must be >= 0 (0: use epochs)")
        _check(self.epochs > 0 and math.isfinite(self.epochs), "epochs must be > 0")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _check(self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps must be >= 0")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]")


@dataclass(frozen=True)
class EvaluationSettings:
    """Validation during training and early stopping.

    Attributes:
        eval_every: Evaluate the validation loss every N steps (and at the end); 0 only at the end.
        eval_examples: Validation examples scored at each evaluation (the first N, fixed).
        early_stopping_patience: Stop after this many evaluations without improvement; 0 disables.
        early_stopping_min_delta: Least decrease of the validation loss that counts as improvement.
        restore_best: After early stopping, put back the weights of the best evaluation.
    """

    eval_every: int = 0
    eval_examples: int = 200
    early_stopping_patience: int = 0
    early_stopping_min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        _check(self.eval_every >= 0, "eval_every must be >= 0")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        _check(self.eval_examples >= 1, "eval_examples must be >= 1")
        _check(self.early_stopping_min_delta >= 0, "early_stopping_min_delta must be >= 0")
        _check(self.early_stopping_patience == 0 or self.eval_every > 0,
               "early_stopping_patience needs eval_every > 0")


@dataclass(frozen=True)
class CheckpointSettings:
    """Resumable checkpoints.

    Attributes:
        save_every: Also write a resumable checkpoint every N steps (0: by wall-clock only).
        save_every_seconds: Write a resumable checkpoint when this many seconds of training have
            passed since the last one (on by default, so a crash loses at most that much work;
            0 with ``save_every`` 0 turns checkpoints off).
        keep_checkpoints: How many checkpoints to keep while training (oldest removed first).
        keep_checkpoints_at_end: Keep ``checkpoints/`` after a completed run (removed by default).
    """

    save_every: int = 0
    save_every_seconds: float = 300.0
    keep_checkpoints: int = 1
    keep_checkpoints_at_end: bool = False

    def __post_init__(self) -> None:
        _check(self.save_every >= 0, "save_every must be >= 0")
        _check(self.save_every_seconds >= 0, "save_every_seconds must be >= 0")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1")


@dataclass(frozen=True)
class SpeedSettings:
    """Speed switches: each keeps what the run learns (tests prove the plain path's loss), off by
    default; :meth:`fast` is the set the free-text recipes start from.

    Attributes:
        packing: Pack short examples into full ``max_length`` rows, attention kept inside each
            example (:mod:`~lowres_adapters.training.packing`).
        masked_only_logits: Apply the LM head only at labelled positions
            (:mod:`~lowres_adapters.training.fast_lm`).
        vocab_trim: Score only the token ids the training text uses (needs ``masked_only_logits``).
        trim_negatives: With ``vocab_trim``, unused ids drawn into each softmax (sampled softmax),
            so training still pushes unused tokens down; 0 scores the corpus's ids only.
        token_cache: Cache tokenised text on disk (memory-mapped) so later runs skip tokenising.
        bf16: Train under CPU bf16 autocast (weights stay float32).
        compile: ``torch.compile`` the model body.
        gradient_checkpointing: Recompute activations in the backward pass (less memory, slower).
        chunk_size: Score at most this many positions at a time (less memory for big vocabularies);
            None scores them all at once.
    """

    packing: bool = False
    masked_only_logits: bool = False
    vocab_trim: bool = False
    trim_negatives: int = 4096
    token_cache: bool = False
    bf16: bool = False
    compile: bool = False
    gradient_checkpointing: bool = False
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        _check(not self.vocab_trim or self.masked_only_logits, "vocab_trim needs masked_only_logits")
        _check(self.trim_negatives >= 0, f"trim_negatives must be >= 0, got {self.trim_negatives}")
        _check(self.chunk_size is None or self.chunk_size >= 1, f"chunk_size must be at least 1, got {self.chunk_size}")

    @classmethod
    def fast(cls, **changes: Any) -> "SpeedSettings":
        """Return the fast path (packing, masked-only logits, trimmed vocabulary, token cache) with
        ``changes`` on top; bf16, compile and checkpointing stay as given (off unless changed)."""
        values = {"packing": True, "masked_only_logits": True, "vocab_trim": True, "token_cache": True}
        return cls(**{**values, **changes})

    @classmethod
    def plain(cls) -> "SpeedSettings":
        """Return every optimisation off (the plain path)."""
        return cls()

    @property
    def any(self) -> bool:
        """Return True when some switch changes the job (the token cache and negatives do not)."""
        return any((self.packing, self.masked_only_logits, self.vocab_trim, self.bf16, self.compile,
                    self.gradient_checkpointing, self.chunk_size is not None))

    def replace(self, **changes: Any) -> "SpeedSettings":
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class BatchSettings:
    """Batches, example length, seed and reporting.

    Attributes:
        batch_size: Examples per optimiser step across all processes and accumulation steps
            (the global batch). Must be divisible by ``grad_accum_steps`` x processes.
        grad_accum_steps: Micro-batches accumulated per optimiser step in each process.
        max_length: Tokens per example; longer examples are truncated.
        seed: Seeds adapter initialisation, data order, MLM masks and dropout.
        log_every: Write a line to ``train_log.jsonl`` every N steps.
        progress: Show a progress bar and the start summary.
    """

    batch_size: int = 8
    grad_accum_steps: int = 1
    max_length: int = 128
    seed: int = 0
    log_every: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(self.grad_accum_steps >= 1, "grad_accum_steps must be >= 1")
        _check(self.batch_size % self.grad_accum_steps == 0,
               f"batch_size {self.batch_size} must be divisible by grad_accum_steps {self.grad_accum_steps}")
        _check(self.max_length >= 2, "max_length must be >= 2")
        _check(self.log_every >= 1, "log_every must be >= 1")


@dataclass(frozen=True)
class DeviceSettings:
    """Where the loop computes and in which precision (:mod:`lowres_adapters.devices`).

    Attributes:
        device: ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda`` or ``mps``. Under
            ``accelerate launch`` each process takes its own GPU.
        precision: ``auto`` (bf16 on GPUs that compute it, else fp16 with loss scaling; on the CPU
            the ``bf16`` speed switch decides), ``fp32``, ``bf16`` or ``fp16`` (GPUs only).
            ``fp32`` and ``bf16`` also set the ``bf16`` speed switch.
    """

    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        _check(self.device in ("auto", "cpu", "cuda", "mps"),
               f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        _check(self.precision in ("auto", "fp32", "bf16", "fp16"),
               f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")


CONCERNS: dict[str, type] = {
    "optimizer": OptimizerSettings, "schedule_settings": ScheduleSettings, "evaluation": EvaluationSettings,
    "checkpoints": CheckpointSettings, "speed": SpeedSettings, "batching": BatchSettings,
    "devices": DeviceSettings,
}
"""The concerns :class:`LoopSettings` is made of, by the attribute that returns each."""


class _LoopSettingsBase:
    """Behaviour of :class:`LoopSettings` (its fields come from :data:`CONCERNS`)."""

    def __post_init__(self) -> None:
        for concern in CONCERNS:  # each concern checks its own fields, in the order of CONCERNS
            getattr(self, concern)

    def _part(self, concern: str) -> Any:
        part_class = CONCERNS[concern]
        return part_class(**{f.name: getattr(self, f.name) for f in dataclasses.fields(part_class)})

    @property
    def optimizer(self) -> OptimizerSettings:
        """Return the optimiser settings."""
        return self._part("optimizer")

    @property
    def schedule_settings(self) -> ScheduleSettings:
        """Return the length and learning-rate schedule settings (``schedule`` is the schedule's name)."""
        return self._part("schedule_settings")

    @property
    def evaluation(self) -> EvaluationSettings:
        """Return the evaluation and early-stopping settings."""
        return self._part("evaluation")

    @property
    def checkpoints(self) -> CheckpointSettings:
        """Return the checkpoint settings."""
        return self._part("checkpoints")

    @property
    def speed(self) -> SpeedSettings:
        """Return the speed switches."""
        return self._part("speed")

    @property
    def batching(self) -> BatchSettings:
        """Return the batch, length, seed and reporting settings."""
        return self._part("batching")

    @property
    def devices(self) -> DeviceSettings:
        """Return the device and precision settings."""
        return self._part("devices")

    def total_steps(self, train_examples: int) -> int:
        """Return the optimiser steps to run for ``train_examples`` examples."""
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.epochs * train_examples / self.batch_size))

    def warmup_for(self, total_steps: int) -> int:
        """Return the warm-up steps for a run of ``total_steps``."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        return int(round(self.warmup_ratio * total_steps))


LoopSettings = dataclasses.make_dataclass(
    "LoopSettings",
    [(f.name, f.type, dataclasses.field(default=f.default)) for part in CONCERNS.values()
     for f in dataclasses.fields(part)],
    bases=(_LoopSettingsBase,), frozen=True,
)
LoopSettings.__module__ = __name__  # where its field types (strings) are resolved, and pickling finds it
LoopSettings.__doc__ = """How the one training loop runs: the fields of every concern in :data:`CONCERNS`, flat.

``LoopSettings(lr=1e-2, max_steps=40)`` sets fields by their names; ``loop.optimizer``,
``loop.schedule_settings``, ``loop.evaluation``, ``loop.checkpoints``, ``loop.speed`` and
``loop.batching``, ``loop.devices`` return the concerns (whose docstrings document each field)."""
