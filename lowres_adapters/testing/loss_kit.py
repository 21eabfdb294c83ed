"""Conformance kit for alignment losses: one call a loss plugin's own tests make.

    from lowres_adapters.plugin import check_alignment_loss

    def test_my_loss_conforms():
        check_alignment_loss(MY_LOSS)          # or a registered name: check_alignment_loss("l1")

On random pooled states (and log-probabilities when the loss reads them) it checks: the config
round-trips through JSON; ``build(config)`` returns a callable; the loss is a finite scalar tensor;
gradients reach the student and are finite; no gradient reaches the teacher (it is a frozen
reference); a batch of one works; the loss is lower when the student equals the teacher than for
unrelated states. A failure raises :class:`~lowres_adapters.testing.conformance.ConformanceError`
naming the loss and the check.
"""

from __future__ import annotations

from typing import Any

import torch

from lowres_adapters.specs import AlignmentInputs, AlignmentLoss
from lowres_adapters.testing.conformance import (
    ConformanceReport,
    _check,
    _check_config_round_trip,
    _require,
    resolve_spec,
)

HIDDEN, VOCAB = 16, 23
"""Sizes of the random pooled states and output distributions the kit feeds the loss."""


def _inputs(batch: int, needs_log_probs: bool, seed: int, same: bool = False) -> AlignmentInputs:
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, HIDDEN, generator=generator)  # (batch, hidden)
    teacher = student.clone() if same else torch.randn(batch, HIDDEN, generator=generator)  # (batch, hidden)
    student_lp = teacher_lp = None
    if needs_log_probs:
        student_lp = torch.log_softmax(torch.randn(batch, VOCAB, generator=generator), dim=-1)  # (batch, vocab)
        teacher_lp = student_lp.clone() if same else torch.log_softmax(
            torch.randn(batch, VOCAB, generator=generator), dim=-1)  # (batch, vocab)
    for tensor in (student, teacher, student_lp, teacher_lp):
        if tensor is not None:
            tensor.requires_grad_(True)
    return AlignmentInputs(student_pooled=student, teacher_pooled=teacher,
                           student_log_probs=student_lp, teacher_log_probs=teacher_lp)


def check_alignment_loss(spec_or_name: AlignmentLoss | str, *, config: Any = None) -> ConformanceReport:
    """Check an alignment loss; raise ``ConformanceError`` on the first failure.

    Args:
        spec_or_name: The :class:`~lowres_adapters.specs.AlignmentLoss`, or a registered name.
        config: Config to check; the loss's default config when None.

    Returns:
        A report whose ``passed`` lists the checks (``adapter_type`` holds the loss's name).
    """
    spec = resolve_spec(spec_or_name, AlignmentLoss, "alignment_losses")
    config = spec.config_class() if config is None else config
    report = ConformanceReport(adapter_type=spec.name)
    _check(spec.name, "config", "round-trip", lambda: _check_config_round_trip(spec, config), report)
    loss_fn = _check(spec.name, "build", "returns a callable", lambda: _built(spec, config), report)
    for batch in (4, 1):
        _check(spec.name, f"batch of {batch}", "finite scalar, student gets gradients, teacher none",
               lambda: _check_gradients(loss_fn, spec.needs_log_probs, batch), report)
    _check(spec.name, "batch of 4", "lower when the student equals the teacher",
           lambda: _check_minimum(loss_fn, spec.needs_log_probs), report)
    return report


def _built(spec: AlignmentLoss, config: Any) -> Any:
    loss_fn = spec.build(config)
    _require(callable(loss_fn), f"build(config) returned {type(loss_fn).__name__}, not a callable")
    return loss_fn


def _check_gradients(loss_fn: Any, needs_log_probs: bool, batch: int) -> None:
    inputs = _inputs(batch, needs_log_probs, seed=batch)
    loss = loss_fn(inputs)
    _require(isinstance(loss, torch.Tensor) and loss.dim() == 0, f"the loss is not a scalar tensor: {loss!r}")
    value = float(loss.detach())
    _require(bool(torch.isfinite(loss.detach())), f"the loss is not finite: {value}")
    loss.backward()
    students = [inputs.student_pooled] + ([inputs.student_log_probs] if needs_log_probs else [])
    _require(any(t.grad is not None for t in students), "no gradient reaches the student")
    _require(all(t.grad is None or bool(torch.isfinite(t.grad).all()) for t in students),
             "the student's gradient is not finite")
    for teacher in (inputs.teacher_pooled, inputs.teacher_log_probs):
        if teacher is not None and teacher.grad is not None:
            _require(not bool(teacher.grad.abs().sum() > 0),
                     "a gradient reaches the teacher: detach it (the teacher is a frozen reference)")


def _check_minimum(loss_fn: Any, needs_log_probs: bool) -> None:
    with torch.no_grad():
        same = float(loss_fn(_inputs(4, needs_log_probs, seed=7, same=True)))
        different = float(loss_fn(_inputs(4, needs_log_probs, seed=7)))
    _require(same < different, f"loss with student == teacher ({same:.4g}) is not below the loss for "
                               f"unrelated states ({different:.4g})")
