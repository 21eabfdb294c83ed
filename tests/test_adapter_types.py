"""Built-in adapter types: what trains, what is saved, native AdapterHub files, the own soft prompt."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.configs import config_from_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import tiny_model

ADAPTERHUB_TYPES = ("seq_bn", "double_seq_bn", "seq_bn_inv", "lora", "ia3", "prefix_tuning")
BUILTIN_TYPES = (*ADAPTERHUB_TYPES, "prompt_tuning", "full")


def attach(model, type_name, name="lang", **config_values):
    spec = get_registry().adapter_type(type_name)
    handle = spec.attach(model, name, spec.config_class(**config_values))
    handle.activate()
    return handle


def batch_for(tokenizer, texts=("In the beginning God created", "Mulungu ndiye kuwala")):
    encoded = tokenizer(list(texts), return_tensors="pt", padding=True)
    labels = encoded["input_ids"].clone()
    labels[encoded["attention_mask"] == 0] = -100
    return {**encoded, "labels": labels}


def perturb(handle, scale=0.5):
    """Give zero-initialised adapters (LoRA B, bottleneck up) a real effect."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def test_every_builtin_type_is_registered_by_the_core_distribution():
    registry = get_registry()
    for name in BUILTIN_TYPES:
        assert name in registry.names("adapter_types")
        assert registry.provider("adapter_types", name).distribution == "lowres-adapters"


@pytest.mark.parametrize("type_name", ADAPTERHUB_TYPES)
def test_masked_lm_head_stays_frozen(type_name):
    model, _ = tiny_model("xlmr")
    handle = attach(model, type_name)
    head = [name for name, p in model.named_parameters() if name.startswith("lm_head") and p.requires_grad]
    assert head == []  # adapters' own train_adapter would leave lm_head.dense and layer_norm trainable
    saved = handle.adapter_state_dict()
    assert not any(key.startswith("lm_head") or "word_embeddings" in key for key in saved)
    assert set(saved) == set(handle.trainable_parameters())


def test_several_adapters_on_one_model_train_one_at_a_time():
    model, _ = tiny_model("llama")
    bottleneck = attach(model, "seq_bn", name="text")
    lora = attach(model, "lora", name="graph")
    assert str(model.active_adapters) == "Stack[graph]"
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora.trainable_parameters())
    assert not trainable & set(bottleneck.trainable_parameters())
    bottleneck.activate()
    assert str(model.active_adapters) == "Stack[text]"
    assert {name for name, p in model.named_parameters() if p.requires_grad} == set(bottleneck.trainable_parameters())


def test_attaching_the_same_name_twice_is_a_user_error():
    model, _ = tiny_model("llama")
    attach(model, "seq_bn", name="lang")
    with pytest.raises(LowresError, match="already has an adapter named 'lang'"):
        attach(model, "lora", name="lang")


def test_adapterhub_types_refuse_a_wrapped_model():
    model, _ = tiny_model("llama")
    prompt = attach(model, "prompt_tuning")
    with pytest.raises(LowresError, match="before wrapping"):
        attach(prompt.model, "seq_bn")


@pytest.mark.parametrize("kind", ["llama", "xlmr"])
@pytest.mark.parametrize("type_name", ADAPTERHUB_TYPES)
def test_adapterhub_user_loads_the_native_files(tmp_path, kind, type_name):
    import adapters

    model, tokenizer = tiny_model(kind)
    handle = attach(model, type_name)
    perturb(handle)
    inputs = tokenizer(["In the beginning God created"], return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    written = handle.save_native(tmp_path)
    assert sorted(written) == ["adapter.safetensors", "adapter_config.json"]
    assert not list(tmp_path.glob("*.bin"))  # no pickles

    fresh, _ = tiny_model(kind)
    with torch.no_grad():
        base = fresh(**inputs).logits
    if type_name == "prefix_tuning" and kind == "llama":
        fresh.set_attn_implementation("eager")  # adapters' prefix is wrong under SDPA (see docs/adapters.md)
    adapters.init(fresh)
    loaded_name = fresh.load_adapter(str(tmp_path), use_safetensors=True, set_active=True)
    assert loaded_name == "lang"
    with torch.no_grad():
        reloaded = fresh(**inputs).logits
    assert torch.allclose(reloaded, expected, atol=1e-6)
    assert float((base - expected).abs().max()) > 1e-3  # the adapter matters: the match is not trivial


def test_prefix_tuning_sees_padded_rows_on_llama():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prefix_tuning")
    batch = batch_for(tokenizer)
    outputs = model(**batch)
    outputs.loss.backward()
    assert any(bool(p.grad.abs().sum() > 0) for p in handle.trainable_parameters().values())
    assert model.config._attn_implementation == "eager"


def test_prompt_tuning_with_masked_lm_labels_keeps_logits_aligned():
    model, tokenizer = tiny_model("xlmr")
    handle = attach(model, "prompt_tuning")
    batch = batch_for(tokenizer)
    batch["labels"][:, ::2] = -100
    outputs = handle.model(**batch, output_hidden_states=True)
    assert outputs.logits.shape[:2] == batch["input_ids"].shape
    assert all(state.shape[:2] == batch["input_ids"].shape for state in outputs.hidden_states)
    flat_logits = outputs.logits.reshape(-1, outputs.logits.shape[-1])  # (batch * seq, vocab)
    expected = torch.nn.functional.cross_entropy(flat_logits, batch["labels"].reshape(-1), ignore_index=-100)
    assert torch.allclose(outputs.loss, expected)
    outputs.loss.backward()
    assert handle.model.soft_prompt.grad is not None
    assert all(p.grad is None for n, p in handle.model.named_parameters() if n != "soft_prompt")


def test_prompt_tuning_causal_loss_is_next_token_prediction():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning", num_tokens=4)
    batch = batch_for(tokenizer)
    outputs = handle.model(**batch)
    vocab = outputs.logits.shape[-1]
    predictions = outputs.logits[:, :-1].reshape(-1, vocab)  # (batch * (seq - 1), vocab)
    shifted = torch.nn.functional.cross_entropy(predictions, batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(outputs.loss, shifted)
    with torch.no_grad():
        without_prompt = model(**batch).logits
    assert not torch.allclose(outputs.logits, without_prompt, atol=1e-4)


def test_prompt_tuning_initialises_from_vocabulary_rows():
    model, _ = tiny_model("llama")
    handle = attach(model, "prompt_tuning", num_tokens=5, seed=3)
    embeddings = model.get_input_embeddings().weight
    for row in handle.model.soft_prompt:
        assert bool((embeddings == row).all(dim=1).any())
    assert handle.model.soft_prompt.data_ptr() != embeddings.data_ptr()


def test_prompt_tuning_generate_returns_input_then_new_tokens():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    encoded = tokenizer(["In the beginning"], return_tensors="pt")
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    generated = handle.model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=0)
    width = inputs["input_ids"].shape[1]
    assert torch.equal(generated[:, :width], inputs["input_ids"])
    assert generated.shape[1] == width + 3
    # The first new token is the argmax of the forward pass at the last input position.
    with torch.no_grad():
        logits = handle.model(**inputs).logits
    assert int(generated[0, width]) == int(logits[0, -1].argmax())


def test_prompt_tuning_refuses_packed_batches():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    ids = tokenizer(["In the beginning God"], return_tensors="pt")["input_ids"]
    restarted = torch.tensor([[0, 1, 2, 0, 1, 2][: ids.shape[1]]])
    with pytest.raises(LowresError, match="packing"):
        handle.model(input_ids=ids[:, : restarted.shape[1]], position_ids=restarted)


def test_full_finetune_trains_everything_and_saves_a_tied_matrix_once():
    model, _ = tiny_model("llama")
    handle = attach(model, "full")
    assert all(p.requires_grad for p in model.parameters())
    saved = handle.adapter_state_dict()
    assert "model.embed_tokens.weight" in saved and "lm_head.weight" not in saved
    frozen = attach(tiny_model("llama")[0], "full", freeze_embeddings=True)
    assert "model.embed_tokens.weight" not in frozen.trainable_parameters()
    assert not frozen.model.get_input_embeddings().weight.requires_grad


def test_load_adapter_state_dict_rejects_other_shapes():
    small, _ = tiny_model("llama")
    wide, _ = tiny_model("llama", hidden_size=48, intermediate_size=96)
    saved = attach(small, "lora").adapter_state_dict()
    with pytest.raises(LowresError, match="different base model"):
        attach(wide, "lora").load_adapter_state_dict(saved)


@pytest.mark.parametrize(("type_name", "values", "message"), [
    ("seq_bn", {"reduction_factor": 0}, "reduction_factor"),
    ("seq_bn", {"non_linearity": "softmax"}, "non_linearity"),
    ("lora", {"attn_matrices": ["q", "x"]}, "attn_matrices"),
    ("lora", {"r": 2.5}, "positive integer"),
    ("prompt_tuning", {"num_tokens": 0}, "num_tokens"),
    ("prompt_tuning", {"init": "text"}, "init"),
    ("seq_bn_inv", {"inv_adapter": "real_nvp"}, "inv_adapter"),
    ("prefix_tuning", {"dropout": 1.5}, "dropout"),
    ("full", {"freeze_embeddings": "yes"}, "freeze_embeddings"),
])
def test_invalid_settings_are_one_line_user_errors(type_name, values, message):
    spec = get_registry().adapter_type(type_name)
    with pytest.raises(LowresError, match=message):
        config_from_dict(spec.config_class, values)


def test_adapterhub_defaults_are_the_published_settings():
    registry = get_registry()
    seq_bn = registry.adapter_type("seq_bn").config_class().to_adapterhub()
    assert (seq_bn.reduction_factor, seq_bn.non_linearity, seq_bn.output_adapter, seq_bn.mh_adapter) == (
        16, "relu", True, False)
    inv = registry.adapter_type("seq_bn_inv").config_class().to_adapterhub()
    assert (inv.inv_adapter, inv.inv_adapter_reduction_factor) == ("nice", 2)
    lora = registry.adapter_type("lora").config_class().to_adapterhub()
    assert (lora.r, lora.alpha, lora.dropout, list(lora.attn_matrices)) == (8, 8, 0.0, ["q", "v"])
