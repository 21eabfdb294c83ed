"""Adapter types on the real default model, SmolLM2-135M (Llama architecture, hidden 576, 30 layers)."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.artifact import WEIGHTS_FILE, ArtifactMetadata, attach_from_artifact, write_artifact
from lowres_adapters.configs import config_to_dict
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.registry import get_registry

pytestmark = pytest.mark.integration

EXPECTED = {  # 30 layers at hidden 576: bottleneck 36; LoRA on q (576->576) and v (576->192)
    "seq_bn": 30 * ((576 * 36 + 36) + (36 * 576 + 576)),
    "lora": 30 * ((576 * 8 + 8 * 576) + (576 * 8 + 8 * 192)),
    "prompt_tuning": 10 * 576,
}


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_real_model_counts_sizes_and_reload(tmp_path, type_name):
    torch.manual_seed(0)
    model, tokenizer = load_base_model(DEFAULT_MODEL)
    spec = get_registry().adapter_type(type_name)
    handle = spec.attach(model, "lang", spec.config_class())
    handle.activate()
    assert sum(p.numel() for p in handle.trainable_parameters().values()) == EXPECTED[type_name]
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    encoded = tokenizer(["Pachiyambi Mulungu adalenga kumwamba.", "Mulungu ndiye kuwala."],
                        return_tensors="pt", padding=True)
    batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    outputs = handle.model(**batch, labels=labels)
    assert outputs.logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(outputs.loss)

    write_artifact(tmp_path, handle, ArtifactMetadata(adapter_type=type_name, adapter_name="lang", plugin=None,
                                                      adapter_config=config_to_dict(handle.config),
                                                      base_model=DEFAULT_MODEL))
    size = (tmp_path / WEIGHTS_FILE).stat().st_size
    assert 4 * EXPECTED[type_name] < size < 4 * EXPECTED[type_name] + 64_000  # adapter only, no embeddings

    fresh, _ = load_base_model(DEFAULT_MODEL)
    reloaded = attach_from_artifact(fresh, tmp_path)
    handle.model.eval()
    with torch.no_grad():
        expected = handle.model(**batch).logits
        assert torch.allclose(reloaded.model(**batch).logits, expected, atol=1e-4)
