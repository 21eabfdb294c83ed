"""Packing on every architecture the library targets: no example attends to another, and the loss of
a packed batch is the token-weighted loss of its examples run one by one. Tiny random configs are
built here (no download); the objective and the position offset come from the model itself."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_tokenizer
from lowres_adapters.training.fast_lm import causal_lm_loss, masked_lm_loss, plain_causal_lm_loss
from lowres_adapters.training.lm_objectives import CAUSAL_LM, MASKED_LM, objective_for_config
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.packing import PackedCollator, isolates_packed_examples, pack_features, position_offset
from lowres_adapters.training.settings import LoopSettings
from lowres_adapters.training.speed import speed_up_for_loop

ROW = 128
TEXTS = list(TINY_CORPUS) + ["Ndipo Mulungu anati, Kukhale kuwala; ndipo kunali kuwala.", "Amen."]
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=260, pad_token_id=0, bos_token_id=2, eos_token_id=3)
DECODER = dict(SMALL, num_key_value_heads=2, tie_word_embeddings=True)


def _config(kind: str, vocab_size: int):
    import transformers as hf

    builders = {
        "llama": lambda: hf.LlamaConfig(vocab_size=vocab_size, **DECODER),
        "qwen2": lambda: hf.Qwen2Config(vocab_size=vocab_size, **DECODER),
        "mistral": lambda: hf.MistralConfig(vocab_size=vocab_size, sliding_window=64, **DECODER),
        "gemma": lambda: hf.GemmaConfig(vocab_size=vocab_size, head_dim=8, **DECODER),
        "phi3": lambda: hf.Phi3Config(vocab_size=vocab_size, **DECODER),
        "xlm-roberta": lambda: hf.XLMRobertaConfig(vocab_size=vocab_size, type_vocab_size=1, **SMALL),
        "bert": lambda: hf.BertConfig(vocab_size=vocab_size, **SMALL),
    }
    return builders[kind]()


def _model(kind: str):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    tokenizer = tiny_tokenizer()
    config = _config(kind, len(tokenizer))
    objective = objective_for_config(config)
    torch.manual_seed(0)
    model = (AutoModelForMaskedLM if objective.masked else AutoModelForCausalLM).from_config(config)
    return model.eval(), tokenizer, objective


def _features(tokenizer, objective) -> list[dict[str, list[int]]]:
    return objective.tokenize(tokenizer, TEXTS, ROW)


KINDS = ["llama", "qwen2", "mistral", "gemma", "phi3", "xlm-roberta", "bert"]


@pytest.mark.parametrize("kind", KINDS)
def test_packed_examples_see_only_themselves(kind):
    model, tokenizer, objective = _model(kind)
    assert objective is (MASKED_LM if kind in ("xlm-roberta", "bert") else CAUSAL_LM)
    features = _features(tokenizer, objective)
    rows = pack_features(features, ROW)
    assert len(rows) < len(features)  # several examples share a row
    collator = PackedCollator.for_model(objective, model, tokenizer, row_length=ROW)
    assert isolates_packed_examples(model, collator, len(tokenizer))
    collator.probability = 1e-12  # no masking: compare the logits of the very same inputs
    batch = collator(rows, torch.Generator().manual_seed(0))
    inputs = {key: batch[key] for key in ("input_ids", "position_ids", "attention_mask") if key in batch}
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits if not objective.masked else model(**inputs).logits
        checked = 0
        for row_index, row in enumerate(rows):
            start = 0
            for length in row["segment_lengths"]:
                ids = torch.tensor([row["input_ids"][start:start + length]])
                alone = model(input_ids=ids).logits[0]  # (length, vocab)
                torch.testing.assert_close(packed[row_index, start:start + length], alone, rtol=1e-4, atol=1e-4)
                start += length
                checked += 1
    assert checked == len(features)


@pytest.mark.parametrize("kind", KINDS)
def test_packed_loss_is_the_token_weighted_loss_of_the_examples_alone(kind):
    model, tokenizer, objective = _model(kind)
    features = _features(tokenizer, objective)
    rows = pack_features(features, ROW)
    collator = PackedCollator.for_model(objective, model, tokenizer, row_length=ROW)
    batch = collator(rows, torch.Generator().manual_seed(1))
    total, count = 0.0, 0
    with torch.no_grad():
        if objective.masked:
            packed_loss, packed_count = masked_lm_loss(model, batch)
        else:
            packed_loss, packed_count = causal_lm_loss(model, batch)
            full_loss, _ = plain_causal_lm_loss(model, batch)  # the plain forward reads the same boundaries
            torch.testing.assert_close(full_loss, packed_loss, rtol=1e-4, atol=1e-5)
        offset = position_offset(model)
        for row_index, row in enumerate(rows):
            start = 0
            for length in row["segment_lengths"]:
                part = slice(start, start + length)
                alone = {"input_ids": batch["input_ids"][row_index:row_index + 1, part],  # same masks as packed
                         "labels": batch["labels"][row_index:row_index + 1, part],
                         "position_ids": torch.arange(length)[None] + offset}
                loss, n = (masked_lm_loss if objective.masked else causal_lm_loss)(model, alone)
                total += float(loss) * n
                count += n
                start += length
    assert packed_count == count > 0
    assert abs(float(packed_loss) - total / count) < 1e-5


def test_position_offset_is_read_from_the_position_embedding():
    xlmr, _, _ = _model("xlm-roberta")
    bert, _, _ = _model("bert")
    llama, _, _ = _model("llama")
    assert position_offset(xlmr) == xlmr.config.pad_token_id + 1  # RoBERTa reserves the padding row
    assert position_offset(bert) == 0 and position_offset(llama) == 0


def test_a_model_that_lets_packed_examples_mix_is_not_packed(capsys):
    model, tokenizer, objective = _model("llama")
    body_forward = model.model.forward

    def forward_ignoring_positions(*args, position_ids=None, **kwargs):  # counts positions itself, masks causally
        return body_forward(*args, **kwargs)

    model.model.forward = forward_ignoring_positions
    collator = PackedCollator.for_model(objective, model, tokenizer, row_length=ROW)
    assert not isolates_packed_examples(model, collator, len(tokenizer))
    features = _features(tokenizer, objective)
    job = TrainingJob(model=model, parameters=dict(model.named_parameters()), train_features=features,
                      collate=objective.collator(tokenizer), loss_fn=objective.loss, name="mixing")
    loop = LoopSettings(packing=True, masked_only_logits=True, max_length=ROW)
    fast = speed_up_for_loop(job, loop, objective=objective, tokenizer=tokenizer)
    assert len(fast.train_features) == len(features)  # not packed
    note = [line for line in capsys.readouterr().err.splitlines() if "packing off" in line]
    assert len(note) == 1 and "mixing" in note[0]


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral", "xlm-roberta", "bert"])
@pytest.mark.parametrize("adapter", ["lora", "seq_bn"])
def test_packing_still_isolates_examples_with_an_adapterhub_adapter_attached(kind, adapter):
    """``adapters`` 1.3 supports these five of the seven (not gemma, phi3); its layers keep packing exact."""
    from lowres_adapters.registry import get_registry

    model, tokenizer, objective = _model(kind)
    spec = get_registry().adapter_type(adapter)
    handle = spec.attach(model, "nya", spec.config_class())
    handle.activate()
    collator = PackedCollator.for_model(objective, model, tokenizer, row_length=ROW)
    assert isolates_packed_examples(handle.model, collator, len(tokenizer))
