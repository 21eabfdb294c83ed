"""Composition: MAD-X stacking, AdapterFusion, averaging, and stacking across adapter libraries."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters import composition
from lowres_adapters.artifact import ArtifactMetadata, attach_from_artifact, write_artifact
from lowres_adapters.configs import config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import tiny_model


def attach(model, type_name, name, **values):
    spec = get_registry().adapter_type(type_name)
    return spec.attach(model, name, spec.config_class(**values))


def perturb(handle, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)


def inputs(tokenizer):
    encoded = tokenizer(["In the beginning God created", "Mulungu ndiye kuwala"], return_tensors="pt", padding=True)
    labels = encoded["input_ids"].clone()
    labels[encoded["attention_mask"] == 0] = -100
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": labels}


def logits_with(model, batch, handle):
    handle.activate()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("kind", ["xlmr", "llama"])
def test_stack_trains_only_the_task_adapter_and_applies_both(kind):
    model, tokenizer = tiny_model(kind)
    lang = attach(model, "seq_bn_inv", "lang")
    task = attach(model, "seq_bn", "task")
    perturb(lang, 1)
    perturb(task, 2)
    batch = inputs(tokenizer)
    lang_only = logits_with(model, batch, lang)
    task_only = logits_with(model, batch, task)

    stacked = composition.stack(lang, task)
    stacked.activate()
    assert str(model.active_adapters) == "Stack[lang, task]"
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(task.trainable_parameters())
    outputs = model(**batch)
    assert not torch.allclose(outputs.logits, lang_only, atol=1e-4)
    assert not torch.allclose(outputs.logits, task_only, atol=1e-4)
    outputs.loss.backward()
    assert all(p.grad is None for p in lang.trainable_parameters().values())
    assert all(p.grad is not None for p in task.trainable_parameters().values())
    assert set(stacked.adapter_state_dict()) == set(task.trainable_parameters())


def test_stack_on_a_language_adapter_loaded_from_a_run_folder(tmp_path):
    model, tokenizer = tiny_model("xlmr")
    lang = attach(model, "seq_bn", "lang")
    perturb(lang, 1)
    metadata = ArtifactMetadata(adapter_type="seq_bn", adapter_name="lang", adapter_config=config_to_dict(lang.config),
                                plugin=None, base_model="tiny-xlmr", objective="mlm")
    write_artifact(tmp_path / "lang", lang, metadata)

    fresh, _ = tiny_model("xlmr")
    loaded = attach_from_artifact(fresh, tmp_path / "lang")
    task = attach(fresh, "lora", "task")
    head = torch.nn.Linear(fresh.config.hidden_size, 3)
    stacked = composition.stack(loaded, task, head=head)
    stacked.activate()
    trainable = stacked.trainable_parameters()
    assert {k for k in trainable if k.startswith("head.")} == {"head.weight", "head.bias"}
    assert set(trainable) - {"head.weight", "head.bias"} == set(task.trainable_parameters())
    assert not any(p.requires_grad for p in loaded.trainable_parameters().values())
    assert str(fresh.active_adapters) == "Stack[lang, task]"
    hidden = fresh(**{k: v for k, v in inputs(tokenizer).items() if k != "labels"},
                   output_hidden_states=True).hidden_states[-1]
    head(hidden[:, 0]).sum().backward()
    assert head.weight.grad is not None and all(p.grad is None for p in loaded.trainable_parameters().values())


def test_fusion_under_a_task_adapter(tmp_path):
    model, tokenizer = tiny_model("xlmr")
    text = attach(model, "seq_bn", "text")
    graph = attach(model, "seq_bn", "graph")
    task = attach(model, "seq_bn", "task")
    fused = composition.fuse([text, graph])
    assert fused.name == "text,graph"
    stacked = composition.stack(fused, task, train_lower=True)
    stacked.activate()
    assert str(model.active_adapters) == "Stack[Fuse[text, graph], task]"
    trainable = set(stacked.trainable_parameters())
    assert trainable == set(task.trainable_parameters()) | set(fused.trainable_parameters())
    assert all("adapter_fusion_layer" in name for name in fused.trainable_parameters())
    assert not trainable & (set(text.trainable_parameters()) | set(graph.trainable_parameters()))
    model(**inputs(tokenizer)).loss.backward()
    assert all(p.grad is not None for p in fused.trainable_parameters().values())
    written = stacked.save_native(tmp_path)
    assert "adapter.safetensors" in written
    assert any(name.startswith("fusion/") and name.endswith(".safetensors") for name in written)


def test_fusion_refuses_other_adapter_types():
    model, _ = tiny_model("llama")
    bottleneck = attach(model, "seq_bn", "text")
    prompt = attach(model, "prompt_tuning", "prompt")
    with pytest.raises(LowresError, match="AdapterHub adapter types only"):
        composition.fuse([bottleneck, prompt])


def test_soft_prompt_on_a_frozen_language_adapter():
    model, tokenizer = tiny_model("llama")
    lang = attach(model, "seq_bn", "lang")
    perturb(lang, 1)
    prompt = attach(model, "prompt_tuning", "task_prompt")
    stacked = composition.stack(lang, prompt)
    assert stacked.model is prompt.model
    stacked.activate()
    assert str(model.active_adapters) == "Stack[lang]"
    assert list(stacked.trainable_parameters()) == ["soft_prompt"]
    batch = inputs(tokenizer)
    with_lang = stacked.model(**batch).logits
    model.set_active_adapters(None)
    without_lang = stacked.model(**batch).logits
    assert not torch.allclose(with_lang, without_lang, atol=1e-4)


def test_average_includes_the_invertible_adapter():
    model, tokenizer = tiny_model("xlmr")
    first = attach(model, "seq_bn_inv", "first")
    second = attach(model, "seq_bn_inv", "second")
    perturb(first, 1)
    perturb(second, 2)
    averaged = composition.average([first, second], "mean", weights=[0.25, 0.75])
    tensors = averaged.trainable_parameters()
    invertible = [key for key in tensors if "invertible_adapters" in key]
    assert invertible
    for key, value in tensors.items():
        a = first.trainable_parameters()[key.replace(".mean.", ".first.")]
        b = second.trainable_parameters()[key.replace(".mean.", ".second.")]
        assert torch.allclose(value, 0.25 * a + 0.75 * b)


def test_average_of_identical_adapters_reproduces_their_outputs():
    model, tokenizer = tiny_model("xlmr")
    first = attach(model, "seq_bn_inv", "first")
    perturb(first, 1)
    second = attach(model, "seq_bn_inv", "second")
    second.load_adapter_state_dict({k.replace(".first.", ".second."): v for k, v in first.adapter_state_dict().items()})
    averaged = composition.average([first, second], "mean")
    batch = inputs(tokenizer)
    assert torch.allclose(logits_with(model, batch, averaged), logits_with(model, batch, first), atol=1e-6)


def test_average_needs_equal_settings():
    model, _ = tiny_model("xlmr")
    first = attach(model, "lora", "first")
    second = attach(model, "lora", "second", r=4)
    with pytest.raises(LowresError, match="equal settings"):
        composition.average([first, second], "mean")
