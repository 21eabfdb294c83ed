"""Exact trainable-parameter counts at XLM-R / mBERT base shape (hidden 768, 12 layers), no download.

The expected values are the published ones (arXiv 2502.10140) and the closed forms below; they
hold for both architectures because adapter sizes do not depend on the vocabulary.
"""

from __future__ import annotations

import pytest

from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import base_shape_config

HIDDEN, LAYERS, INTERMEDIATE = 768, 12, 3072
SEQ_BN = LAYERS * ((HIDDEN * 48 + 48) + (48 * HIDDEN + HIDDEN))
NICE = 2 * ((384 * 192 + 192) + (192 * 384 + 384))
LORA_QV = LAYERS * 2 * (HIDDEN * 8 + 8 * HIDDEN)
IA3 = LAYERS * (HIDDEN + HIDDEN + INTERMEDIATE)
PREFIX = 30 * HIDDEN + (HIDDEN * 512 + 512) + (512 * LAYERS * 2 * HIDDEN + LAYERS * 2 * HIDDEN)

EXPECTED = {
    "seq_bn": 894_528,
    "seq_bn_inv": 1_190_592,
    "lora": 294_912,
    "prompt_tuning": 7_680,
    "double_seq_bn": 2 * SEQ_BN,
    "ia3": IA3,
    "prefix_tuning": PREFIX,
}


def test_closed_forms_match_the_published_counts():
    assert SEQ_BN == EXPECTED["seq_bn"]
    assert SEQ_BN + NICE == EXPECTED["seq_bn_inv"]
    assert LORA_QV == EXPECTED["lora"]


@pytest.fixture(scope="module", params=["xlmr", "bert"])
def base_shape_model(request):
    """A base-shaped masked LM on the meta device: real shapes, no memory, no initialisation time."""
    import torch
    from transformers import AutoModelForMaskedLM

    with torch.device("meta"):
        yield AutoModelForMaskedLM.from_config(base_shape_config(request.param))


@pytest.fixture(scope="module")
def attached(base_shape_model):
    """Attach every counted type to one base-shaped model (several adapters on one model)."""
    registry = get_registry()
    handles = {}
    model = base_shape_model
    for name in EXPECTED:
        if name == "prompt_tuning":
            continue
        spec = registry.adapter_type(name)
        handles[name] = spec.attach(model, f"{name}_adapter", spec.config_class())
    prompt_spec = registry.adapter_type("prompt_tuning")
    handles["prompt_tuning"] = prompt_spec.attach(model, "prompt", prompt_spec.config_class())
    return handles


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_trainable_count_at_base_shape(attached, type_name):
    handle = attached[type_name]
    handle.activate()
    trainable = handle.trainable_parameters()
    assert sum(p.numel() for p in trainable.values()) == EXPECTED[type_name]
    assert sum(p.numel() for p in handle.adapter_state_dict().values()) == EXPECTED[type_name]
    model = handle.model
    requiring_grad = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert requiring_grad == EXPECTED[type_name]


def test_full_finetune_counts_every_weight_once(base_shape_model):
    spec = get_registry().adapter_type("full")
    model = base_shape_model
    handle = spec.attach(model, "full", spec.config_class())
    distinct = {id(p): p.numel() for p in model.parameters()}
    assert sum(p.numel() for p in handle.trainable_parameters().values()) == sum(distinct.values())
    frozen_embeddings = spec.attach(model, "full_no_embeddings", spec.config_class(freeze_embeddings=True))
    embedding_size = model.get_input_embeddings().weight.numel()
    count = sum(p.numel() for p in frozen_embeddings.trainable_parameters().values())
    assert count == sum(distinct.values()) - embedding_size
