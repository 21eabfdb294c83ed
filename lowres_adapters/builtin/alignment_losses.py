"""Built-in alignment losses: ``mse``, ``cosine``, ``kl`` and ``infonce``.

Each loss compares the adapted model on target-language text (student) with the frozen original
model on the high-resource parallel text (teacher), through
:class:`~lowres_adapters.specs.AlignmentInputs`. They register through the same hook a third-party
plugin uses (see docs/transfer.md): a frozen config dataclass whose defaults are the chosen
setting, and ``build(config) -> loss_fn`` with ``loss_fn(inputs) -> scalar tensor``.

The teacher side never receives gradients: every loss detaches it, so a caller that forgot
``torch.no_grad()`` on the teacher still trains only the student.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import AlignmentInputs, AlignmentLoss

if TYPE_CHECKING:  # pragma: no cover
    import torch

LossFunction = Callable[[AlignmentInputs], "torch.Tensor"]


@dataclass(frozen=True)
class MseConfig:
    """Settings of the ``mse`` loss.

    Attributes:
        normalize: L2-normalise both pooled vectors first, so only their direction is compared
            (the magnitude of hidden states differs a lot between layers and models).
    """

    normalize: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be true or false, got {self.normalize!r}")


@dataclass(frozen=True)
class CosineConfig:
    """Settings of the ``cosine`` loss: ``1 - cos(student, teacher)`` averaged over the batch.

    Attributes:
        eps: Floor of the vector norms, against division by zero.
    """

    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, (int, float)) and self.eps > 0):
            raise ValueError(f"eps must be a positive number, got {self.eps!r}")


@dataclass(frozen=True)
class KlConfig:
    """Settings of the ``kl`` loss: KL(teacher || student) of the output distributions.

    Attributes:
        temperature: Both distributions are softened as ``softmax(log_probs / T)`` and the loss
            is multiplied by ``T**2`` (Hinton et al.'s distillation); 1 compares them unchanged.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")


@dataclass(frozen=True)
class InfoNceConfig:
    """Settings of the ``infonce`` loss: contrastive over the batch, the parallel text is the positive.

    Attributes:
        temperature: Divides the cosine similarities before the softmax (CLIP / SimCSE use 0.05-0.1).
        symmetric: Average the student->teacher and teacher->student directions (as CLIP does);
            False uses student->teacher only.
    """

    temperature: float = 0.07
    symmetric: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric must be true or false, got {self.symmetric!r}")


def _pooled_pair(inputs: AlignmentInputs) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Return (student, detached teacher) pooled states in float32, checking their shapes."""
    student, teacher = inputs.student_pooled, inputs.teacher_pooled
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"pooled states must both be (batch, hidden); got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    return student.float(), teacher.detach().float()


def build_mse(config: MseConfig) -> LossFunction:
    """Return the mean squared error between pooled student and teacher states."""
    # lazy: imports torch
    import torch.nn.functional as functional

    def mse_loss(inputs: AlignmentInputs) -> "torch.Tensor":
        student, teacher = _pooled_pair(inputs)
        if config.normalize:
            student, teacher = functional.normalize(student, dim=-1), functional.normalize(teacher, dim=-1)
        return functional.mse_loss(student, teacher)

    return mse_loss


def build_cosine(config: CosineConfig) -> LossFunction:
    """Return ``1 - cosine similarity`` of pooled states, averaged over the batch (0 = same direction)."""
    # lazy: imports torch
    import torch.nn.functional as functional

    def cosine_loss(inputs: AlignmentInputs) -> "torch.Tensor":
        student, teacher = _pooled_pair(inputs)
        similarity = functional.cosine_similarity(student, teacher, dim=-1, eps=config.eps)  # (batch,)
        return (1.0 - similarity).mean()

    return cosine_loss


def build_kl(config: KlConfig) -> LossFunction:
    """Return KL(teacher || student) of output distributions, averaged over the batch."""
    # lazy: imports torch
    import torch
    # lazy: imports torch
    import torch.nn.functional as functional

    def kl_loss(inputs: AlignmentInputs) -> "torch.Tensor":
        if inputs.student_log_probs is None or inputs.teacher_log_probs is None:
            raise ValueError("the kl loss needs student_log_probs and teacher_log_probs")
        student = inputs.student_log_probs.float()
        teacher = inputs.teacher_log_probs.detach().float()
        if student.dim() != 2 or student.shape != teacher.shape:
            raise ValueError(
                f"log-probabilities must both be (batch, vocab); got {tuple(student.shape)} and "
                f"{tuple(teacher.shape)}"
            )
        scale = 1.0
        if config.temperature != 1.0:
            student = torch.log_softmax(student / config.temperature, dim=-1)
            teacher = torch.log_softmax(teacher / config.temperature, dim=-1)
            scale = config.temperature**2
        return scale * functional.kl_div(student, teacher, reduction="batchmean", log_target=True)

    return kl_loss


def build_infonce(config: InfoNceConfig) -> LossFunction:
    """Return InfoNCE over the batch: each student text must pick out its own parallel teacher text."""
    # lazy: imports torch
    import torch
    # lazy: imports torch
    import torch.nn.functional as functional

    def infonce_loss(inputs: AlignmentInputs) -> "torch.Tensor":
        student, teacher = _pooled_pair(inputs)
        student = functional.normalize(student, dim=-1)
        teacher = functional.normalize(teacher, dim=-1)
        logits = student @ teacher.T / config.temperature  # (batch, batch): row i = student i vs all teachers
        targets = torch.arange(logits.shape[0], device=logits.device)
        loss = functional.cross_entropy(logits, targets)
        if config.symmetric:
            loss = 0.5 * (loss + functional.cross_entropy(logits.T, targets))
        return loss

    return infonce_loss


def infonce_floor(batch_size: int, temperature: float) -> float:
    """Return the InfoNCE value of a perfectly aligned batch of orthogonal pairs (its practical minimum).

    With unit similarity on the diagonal and 0 elsewhere, each row's cross-entropy is
    ``log(1 + (batch - 1) * exp(-1 / temperature))``.
    """
    return math.log1p((batch_size - 1) * math.exp(-1.0 / temperature))


BUILTIN_LOSSES = (
    AlignmentLoss(name="mse", config_class=MseConfig, build=build_mse,
                  description="Mean squared error of pooled hidden states (student vs frozen teacher)"),
    AlignmentLoss(name="cosine", config_class=CosineConfig, build=build_cosine,
                  description="1 - cosine similarity of pooled hidden states"),
    AlignmentLoss(name="kl", config_class=KlConfig, build=build_kl, needs_log_probs=True,
                  description="KL(teacher || student) of pooled output distributions"),
    AlignmentLoss(name="infonce", config_class=InfoNceConfig, build=build_infonce,
                  description="Contrastive InfoNCE over the batch; the parallel text is the positive"),
)


@hookimpl
def register_alignment_losses(register: Callable[[AlignmentLoss], None]) -> None:
    """Register the built-in alignment losses."""
    for spec in BUILTIN_LOSSES:
        register(spec)
