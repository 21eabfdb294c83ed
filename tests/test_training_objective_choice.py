"""Masked vs causal LM is read from the model's config and transformers' auto classes, not a list."""

from __future__ import annotations

import json

import pytest
from training_support import install_toy_registry, save_tiny_model, write_corpus

from lowres_adapters.artifact import read_metadata
from lowres_adapters.errors import LowresError
from lowres_adapters.models import objective_name_for_config
from lowres_adapters.training.lm_objectives import CAUSAL_LM, MASKED_LM, objective_for_config, objective_named


def _configs():
    from transformers import AlbertConfig, BertConfig, GemmaConfig, LlamaConfig, ModernBertConfig, Qwen2Config

    return {
        "bert": (BertConfig(), MASKED_LM),
        "bert-mlm-class": (BertConfig(architectures=["BertForMaskedLM"]), MASKED_LM),
        "bert-decoder": (BertConfig(is_decoder=True), CAUSAL_LM),
        "bert-lm-head-class": (BertConfig(architectures=["BertLMHeadModel"]), CAUSAL_LM),
        "albert": (AlbertConfig(), MASKED_LM),  # masked only, never on a list
        "modernbert": (ModernBertConfig(), MASKED_LM),
        "llama": (LlamaConfig(), CAUSAL_LM),
        "qwen2": (Qwen2Config(), CAUSAL_LM),
        "gemma": (GemmaConfig(), CAUSAL_LM),
    }


@pytest.mark.parametrize("name", sorted(_configs()))
def test_objective_comes_from_the_config(name):
    config, expected = _configs()[name]
    assert objective_for_config(config) is expected
    assert objective_name_for_config(config) == expected.code


def test_an_architecture_without_an_lm_head_is_one_clear_line():
    from transformers import ViTConfig

    with pytest.raises(LowresError) as raised:
        objective_for_config(ViTConfig(), "google/vit-tiny")
    message = str(raised.value)
    assert "\n" not in message and "'vit'" in message and "google/vit-tiny" in message
    assert "neither a masked-LM nor a causal-LM head" in message


def test_objectives_are_their_recorded_names():
    assert (CAUSAL_LM, MASKED_LM) == ("clm", "mlm")
    assert json.loads(json.dumps({"objective": MASKED_LM})) == {"objective": "mlm"}
    assert objective_named("mlm") is MASKED_LM and objective_named(CAUSAL_LM) is CAUSAL_LM
    assert MASKED_LM.masked and not CAUSAL_LM.masked
    assert not CAUSAL_LM.predicts_first_token and MASKED_LM.predicts_first_token
    with pytest.raises(LowresError, match="seq2seq"):
        objective_named("seq2seq")


def _register_novel_encoder():
    """An encoder type transformers does not ship, registered with the auto classes as a plugin would."""
    from transformers import AutoConfig, AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    class NovelEncoderConfig(BertConfig):
        model_type = "lowres-test-novel-encoder"

    class NovelEncoderForMaskedLM(BertForMaskedLM):
        config_class = NovelEncoderConfig

    try:
        AutoConfig.register(NovelEncoderConfig.model_type, NovelEncoderConfig)
        AutoModelForMaskedLM.register(NovelEncoderConfig, NovelEncoderForMaskedLM)
    except ValueError:  # registered by an earlier test in this process
        pass
    return AutoConfig.for_model(NovelEncoderConfig.model_type)


def test_a_registered_encoder_no_list_names_is_masked():
    config = _register_novel_encoder()
    assert objective_for_config(config) is MASKED_LM


def _adapt(model_dir, tmp_path, steps: int):
    from lowres_adapters.training.adapt import run
    from lowres_adapters.training.settings import build_run_settings

    install_toy_registry()
    train, held_out = write_corpus(tmp_path)
    settings = build_run_settings({"language": "tum", "model": str(model_dir), "adapter": "toy",
                                   "output": str(tmp_path / "run"), "loop": {"max_steps": steps, "progress": False},
                                   "data": {"text": str(train), "eval_text": str(held_out)}})
    return run(settings, echo=lambda line: None)


def test_tiny_bert_for_masked_lm_trains_with_the_masked_objective(tmp_path):
    model_dir = save_tiny_model(tmp_path / "bert", kind="bert")
    assert json.loads((model_dir / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    result = _adapt(model_dir, tmp_path, steps=3)
    run_dir = result.run_dir
    assert read_metadata(run_dir).objective == "mlm"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["adapted"]["objective"] == "mlm" and "pseudo_perplexity" in metrics["adapted"]
    loop = json.loads((run_dir / "run_config.json").read_text())["loop"]
    assert loop["lr"] == 1e-4 and loop["batch_size"] == 16  # the encoder defaults


def test_a_model_without_an_lm_head_is_refused_in_one_line(tmp_path):
    from transformers import ViTConfig

    model_dir = tmp_path / "vit"
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=64).save_pretrained(model_dir)
    with pytest.raises(LowresError) as raised:
        _adapt(model_dir, tmp_path, steps=1)
    assert "\n" not in str(raised.value) and "neither a masked-LM nor a causal-LM" in str(raised.value)
    assert not (tmp_path / "run" / "lowres_adapter.json").exists()
