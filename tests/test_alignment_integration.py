"""Integration: prompt + alignment on the real SmolLM2-135M with real English-Chichewa pairs
(needs `lowres data fetch nya`): the teacher is the original model, only the prompt learns."""

from __future__ import annotations

import pytest
import torch


def _nya_fetched() -> bool:
    from lowres_adapters.data.cache import read_manifest
    from lowres_adapters.paths import data_dir

    return read_manifest(data_dir("nya")) is not None


@pytest.mark.integration
@pytest.mark.skipif(not _nya_fetched(), reason="run `lowres data fetch nya` (make data) first")
def test_soft_prompt_alignment_on_smollm2():
    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.models import DEFAULT_MODEL, load_base_model
    from lowres_adapters.registry import get_registry
    from lowres_adapters.training.alignment import AlignmentObjective, build_alignment_loss

    pairs = load_pack_data("nya").pairs["train"][:4]
    model, tokenizer = load_base_model(DEFAULT_MODEL)
    english = tokenizer([pair.source for pair in pairs], return_tensors="pt", padding=True)
    chichewa = tokenizer([pair.target for pair in pairs], return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = model(**english, output_hidden_states=True).hidden_states[-1]
    spec = get_registry().adapter_type("prompt_tuning")
    handle = spec.attach(model, "nya", spec.config_class())
    handle.activate()
    loss_fn, needs = build_alignment_loss("cosine", {})
    objective = AlignmentObjective(loss_fn, needs, handle, cache_limit=0)  # teacher: the base, adapter off
    teacher = objective.teacher_side(english["input_ids"], english["attention_mask"])
    mask = english["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(teacher.pooled, (reference * mask).sum(1) / mask.sum(1), rtol=1e-4, atol=1e-4)

    optimizer = torch.optim.Adam([handle.model.soft_prompt], lr=5e-3)
    losses = []
    for _ in range(3):
        student, _ = objective.student_side(handle.model, chichewa["input_ids"], chichewa["attention_mask"])
        loss = objective.loss(student, teacher)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(parameter.grad is None for parameter in model.parameters())
    assert losses[-1] < losses[0]
