"""The built-in alignment losses: registration, hand-checkable values, gradients only to the student."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as functional

from lowres_adapters.builtin.alignment_losses import infonce_floor
from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.specs import AlignmentInputs


def build(name: str, **settings):
    """Return the loss function registered as ``name`` with ``settings``."""
    spec = get_registry().alignment_loss(name)
    return spec.build(spec.config_class(**settings))


def pooled(student: torch.Tensor, teacher: torch.Tensor) -> AlignmentInputs:
    return AlignmentInputs(student_pooled=student, teacher_pooled=teacher)


def test_builtins_are_registered_through_the_entry_point():
    registry = get_registry()
    assert {"mse", "cosine", "kl", "infonce"} <= set(registry.names("alignment_losses"))
    assert registry.provider("alignment_losses", "kl").distribution == "lowres-adapters"
    assert registry.alignment_loss("kl").needs_log_probs is True
    assert registry.alignment_loss("cosine").needs_log_probs is False


@pytest.mark.parametrize("name", ["mse", "cosine", "kl", "infonce"])
def test_configs_round_trip(name):
    spec = get_registry().alignment_loss(name)
    config = spec.config_class()
    assert config_from_dict(spec.config_class, config_to_dict(config)) == config


def test_bad_setting_is_one_line_error():
    spec = get_registry().alignment_loss("infonce")
    with pytest.raises(LowresError, match="temperature must be a positive number"):
        config_from_dict(spec.config_class, {"temperature": 0}, where="--align-config")


@pytest.mark.parametrize("name", ["mse", "cosine"])
def test_identical_inputs_give_zero(name):
    states = torch.randn(4, 16)
    assert build(name)(pooled(states, states.clone())).item() == pytest.approx(0.0, abs=1e-6)


def test_mse_matches_hand_value():
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    # squared errors 0, 4, 9, 0 -> mean 13 / 4
    assert build("mse")(pooled(student, teacher)).item() == pytest.approx(13 / 4)
    # normalised: [1,2]/sqrt5 vs [1,0]; [0,0] stays 0 vs [1,0]
    first = (1 / math.sqrt(5) - 1) ** 2 + (2 / math.sqrt(5)) ** 2
    assert build("mse", normalize=True)(pooled(student, teacher)).item() == pytest.approx((first + 1) / 4)


def test_cosine_of_orthogonal_is_one_and_of_opposite_is_two():
    student = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert build("cosine")(pooled(student, torch.tensor([[0.0, 2.0], [5.0, 0.0]]))).item() == pytest.approx(1.0)
    assert build("cosine")(pooled(student, -student)).item() == pytest.approx(2.0)


def test_cosine_ignores_scale():
    states = torch.randn(3, 8)
    assert build("cosine")(pooled(states, 7.5 * states)).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_matches_torch_reference():
    torch.manual_seed(0)
    student = torch.log_softmax(torch.randn(5, 11), dim=-1)
    teacher = torch.log_softmax(torch.randn(5, 11), dim=-1)
    inputs = AlignmentInputs(torch.zeros(5, 2), torch.zeros(5, 2), student, teacher)
    reference = functional.kl_div(student, teacher.exp(), reduction="batchmean")
    by_hand = (teacher.exp() * (teacher - student)).sum(-1).mean()
    value = build("kl")(inputs)
    assert value.item() == pytest.approx(reference.item(), rel=1e-5)
    assert value.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert build("kl")(AlignmentInputs(torch.zeros(5, 2), torch.zeros(5, 2), teacher, teacher)).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_kl_temperature_softens_and_rescales():
    torch.manual_seed(1)
    student = torch.log_softmax(torch.randn(3, 7), dim=-1)
    teacher = torch.log_softmax(torch.randn(3, 7), dim=-1)
    inputs = AlignmentInputs(torch.zeros(3, 2), torch.zeros(3, 2), student, teacher)
    soft_student = torch.log_softmax(student / 2.0, dim=-1)
    soft_teacher = torch.log_softmax(teacher / 2.0, dim=-1)
    expected = 4.0 * functional.kl_div(soft_student, soft_teacher.exp(), reduction="batchmean")
    assert build("kl", temperature=2.0)(inputs).item() == pytest.approx(expected.item(), rel=1e-5)


def test_kl_without_log_probs_says_so():
    with pytest.raises(ValueError, match="needs student_log_probs"):
        build("kl")(pooled(torch.zeros(2, 3), torch.zeros(2, 3)))


def test_infonce_aligned_one_hot_pairs_are_near_floor_and_shuffled_are_high():
    one_hot = torch.eye(8)
    aligned = build("infonce")(pooled(one_hot, one_hot)).item()
    assert aligned == pytest.approx(infonce_floor(8, 0.07), abs=1e-6)  # float32 rounding
    assert aligned < 1e-4
    shuffled = build("infonce")(pooled(one_hot, one_hot.roll(1, dims=0))).item()
    assert shuffled > 10.0  # the positive has similarity 0, a negative has 1: about 1/0.07


def test_infonce_matches_hand_value_for_two_examples():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # cos: [[0.7071, 0], [0.7071, 1]]
    temperature = 0.5
    cos = torch.tensor([[1 / math.sqrt(2), 0.0], [1 / math.sqrt(2), 1.0]])
    rows = functional.cross_entropy(cos / temperature, torch.arange(2))
    columns = functional.cross_entropy(cos.T / temperature, torch.arange(2))
    one_way = build("infonce", temperature=temperature, symmetric=False)(pooled(student, teacher)).item()
    both = build("infonce", temperature=temperature)(pooled(student, teacher)).item()
    assert one_way == pytest.approx(rows.item(), rel=1e-5)
    assert both == pytest.approx(0.5 * (rows + columns).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["mse", "cosine", "infonce"])
def test_gradient_reaches_student_only(name):
    student = torch.randn(4, 6, requires_grad=True)
    teacher = torch.randn(4, 6, requires_grad=True)
    build(name)(pooled(student, teacher)).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(batch, hidden\)"):
        build("mse")(pooled(torch.zeros(2, 3), torch.zeros(3, 3)))
