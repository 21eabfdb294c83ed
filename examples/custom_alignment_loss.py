"""Add an alignment loss as a plugin, exactly as the built-in ``mse``/``cosine``/``kl``/``infonce`` are.

As its own pip package, put the ``register_alignment_losses`` hook in a module and declare it::

    [project.entry-points.lowres_adapters]
    my_losses = "my_losses.plugin"

Then ``lowres list losses`` shows ``l1`` and ``lowres adapt nya --recipe prompt-align --set
recipe_options.align_loss=l1`` trains with it. Here the plugin is registered in-process (as a test
or notebook would) and evaluated on hand-made vectors: ``python examples/custom_alignment_loss.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

from lowres_adapters import hookimpl
from lowres_adapters.registry import get_registry
from lowres_adapters.specs import AlignmentInputs, AlignmentLoss


@dataclass(frozen=True)
class L1Config:
    """Settings of the ``l1`` loss.

    Attributes:
        scale: Multiplies the loss.
    """

    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError("scale must be > 0")


def build_l1(config: L1Config) -> Callable[[AlignmentInputs], torch.Tensor]:
    """Return the mean absolute difference of pooled states, times ``scale``."""

    def l1_loss(inputs: AlignmentInputs) -> torch.Tensor:
        return config.scale * (inputs.student_pooled - inputs.teacher_pooled.detach()).abs().mean()

    return l1_loss


@hookimpl
def register_alignment_losses(register: Callable[[AlignmentLoss], None]) -> None:
    """Register the ``l1`` alignment loss."""
    register(AlignmentLoss(name="l1", config_class=L1Config, build=build_l1,
                           description="L1 distance of pooled hidden states"))


def main() -> dict[str, Any]:
    """Register this module as a plugin, look the loss up by name and evaluate it."""
    from lowres_adapters.training.alignment import build_alignment_loss

    registry = get_registry()
    if "l1" not in registry.names("alignment_losses"):
        registry.add_plugin(sys.modules[__name__], name="custom_alignment_loss_example")
    loss_fn, needs_log_probs = build_alignment_loss("l1", {"scale": 2.0})
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    value = float(loss_fn(AlignmentInputs(student_pooled=student, teacher_pooled=teacher)))
    print(f"registered losses: {', '.join(registry.names('alignment_losses'))}")
    print(f"l1 (scale 2) of the example vectors: {value:.3f}  # 2 x mean(|0|, |2|, |1|, |1|) = 2.0")
    return {"value": value, "needs_log_probs": needs_log_probs, "names": registry.names("alignment_losses")}


if __name__ == "__main__":
    main()
