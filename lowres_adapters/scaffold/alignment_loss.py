"""Template of ``lowres new alignment-loss NAME``: an L1 distance of pooled states to start from."""

from __future__ import annotations


def defaults(name: str) -> dict[str, str]:
    """Return the kind-specific placeholders."""
    return {"__LABEL__": "alignment loss", "__MODULE__": "loss", "__SPEC__": "__UPPER___LOSS",
            "__HOOK__": "register_alignment_losses",
            "__DESCRIPTION__": f"The {name} alignment loss for lowres-adapters",
            "__TRY__": f"lowres adapt nya --recipe prompt-align --set recipe_options.align_loss={name} --max-steps 1"}


LOSS = '''"""The __NAME__ alignment loss: mean absolute difference of pooled student and teacher states."""

from __future__ import annotations

from dataclasses import dataclass

from lowres_adapters.plugin import AlignmentInputs, AlignmentLoss


@dataclass(frozen=True)
class __CLASS__Config:
    """Settings of __NAME__.

    Attributes:
        normalize: Compare unit-length vectors (the size of hidden states differs across layers).
    """

    normalize: bool = True


def build___NAME__(config: __CLASS__Config):
    """Return ``loss_fn(inputs) -> scalar tensor``."""
    import torch.nn.functional as functional

    def loss_fn(inputs: AlignmentInputs):
        student = inputs.student_pooled.float()  # (batch, hidden)
        teacher = inputs.teacher_pooled.detach().float()  # (batch, hidden): a frozen reference
        if config.normalize:
            student, teacher = functional.normalize(student, dim=-1), functional.normalize(teacher, dim=-1)
        return (student - teacher).abs().mean()

    return loss_fn


__UPPER___LOSS = AlignmentLoss(name="__NAME__", config_class=__CLASS__Config, build=build___NAME__,
                               description="__NAME__: mean absolute difference of pooled hidden states")
'''

TESTS = '''"""__NAME__ passes lowres-adapters' alignment-loss kit."""

from lowres_adapters.plugin import check_alignment_loss

from __PKG__.loss import __CLASS__Config, __UPPER___LOSS


def test___NAME___conforms():
    check_alignment_loss(__UPPER___LOSS)
    check_alignment_loss(__UPPER___LOSS, config=__CLASS__Config(normalize=False))
'''

FILES = {"__PKG__/loss.py": LOSS, "tests/test___NAME__.py": TESTS}
