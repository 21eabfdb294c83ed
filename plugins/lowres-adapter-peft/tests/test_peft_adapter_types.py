"""The PEFT adapter types: registered through the entry point, conformant, exact sizes, PEFT-native files."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.registry import get_registry
from lowres_adapters.testing.conformance import check_adapter_type
from lowres_adapters.testing.tiny import base_shape_config, tiny_model

from lowres_adapter_peft.plugin import PEFT_ADAPTER_TYPES

TYPE_NAMES = tuple(spec.name for spec in PEFT_ADAPTER_TYPES)


def test_installing_the_package_registers_its_types():
    registry = get_registry()
    for name in ("peft_lora", "peft_ia3", "peft_vera", "peft_loha", "peft_lokr"):
        assert name in registry.names("adapter_types")
        assert registry.provider("adapter_types", name).distribution == "lowres-adapter-peft"


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_peft_type_conforms(type_name):
    report = check_adapter_type(type_name, kinds=("llama", "xlmr"))
    assert report.native_files["xlmr"] == ["adapter_config.json", "adapter_model.safetensors"]


@pytest.mark.parametrize(("type_name", "values", "expected"), [
    ("peft_lora", {}, 12 * 2 * (768 * 8 + 8 * 768)),  # = 294,912, as AdapterHub's lora
    ("peft_vera", {"r": 8}, 12 * 2 * (768 + 8)),  # = 18,624: VeRA trains two vectors per layer
    ("peft_vera", {}, 12 * 2 * (768 + 256)),
    ("peft_ia3", {}, 12 * (768 + 768 + 768 + 3072)),  # key, value, attention output, feed-forward input
])
def test_trainable_count_at_base_shape(type_name, values, expected):
    from transformers import AutoModelForMaskedLM

    with torch.device("meta"):
        model = AutoModelForMaskedLM.from_config(base_shape_config("xlmr"))
        spec = get_registry().adapter_type(type_name)
        handle = spec.attach(model, "lang", spec.config_class(**values))
    handle.activate()
    assert sum(p.numel() for p in handle.trainable_parameters().values()) == expected
    assert sum(p.numel() for p in handle.model.parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("kind", ["llama", "xlmr"])
def test_a_peft_user_loads_the_native_files(tmp_path, kind):
    from peft import PeftModel

    model, tokenizer = tiny_model(kind)
    spec = get_registry().adapter_type("peft_lora")
    handle = spec.attach(model, "lang", spec.config_class())
    handle.activate()
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(0.5)
    inputs = tokenizer(["In the beginning God created"], return_tensors="pt")
    inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    with torch.no_grad():
        expected = handle.model(**inputs).logits
    handle.save_native(tmp_path)

    fresh, _ = tiny_model(kind)
    loaded = PeftModel.from_pretrained(fresh, str(tmp_path))
    with torch.no_grad():
        assert torch.allclose(loaded(**inputs).logits, expected, atol=1e-6)


def test_two_peft_adapters_on_one_model_train_one_at_a_time():
    model, _ = tiny_model("llama")
    spec = get_registry().adapter_type("peft_lora")
    text = spec.attach(model, "text", spec.config_class())
    graph = spec.attach(text.model, "graph", spec.config_class(r=4))
    assert graph.model is text.model
    graph.activate()
    trainable = {name for name, p in graph.model.named_parameters() if p.requires_grad}
    assert trainable == set(graph.trainable_parameters())
    assert not trainable & set(text.trainable_parameters())
    assert graph.model.active_adapter == "graph"


def test_peft_cannot_mix_methods_in_one_model():
    from lowres_adapters.errors import LowresError

    model, _ = tiny_model("llama")
    registry = get_registry()
    lora = registry.adapter_type("peft_lora").attach(model, "text", registry.adapter_type("peft_lora").config_class())
    with pytest.raises(LowresError, match="different peft types"):
        registry.adapter_type("peft_ia3").attach(lora.model, "graph", registry.adapter_type("peft_ia3").config_class())
