"""BLEU/chrF/chrF++ equal sacrebleu's; generation is batched with left padding, correctly."""

from __future__ import annotations

import pytest
import sacrebleu
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.translation import (
    evaluate_translation,
    generate_translations,
    plain_prompt,
    score_translations,
)
from lowres_adapters.testing.tiny import tiny_model

HYPOTHESES = ["Mulungu adalenga kumwamba.", "dziko lapansi linali lopanda kanthu", "God is light"]
REFERENCES = ["Pachiyambi Mulungu adalenga kumwamba.", "Dziko lapansi linali lopanda maonekedwe.",
              "God is light, and in him is no darkness."]


def test_scores_equal_sacrebleus_own_corpus_functions():
    scores = score_translations(HYPOTHESES, REFERENCES)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
    assert scores.chrf_pp == pytest.approx(
        sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES], word_order=2).score)
    assert scores.chrf_pp != scores.chrf
    assert "tok:13a" in scores.bleu_signature and "nw:2" in scores.chrf_pp_signature
    assert score_translations(REFERENCES, REFERENCES).chrf == pytest.approx(100.0)


def test_bleu_tokenizer_is_configurable_and_in_the_signature():
    scores = score_translations(HYPOTHESES, REFERENCES, bleu_tokenize="char")
    assert "tok:char" in scores.bleu_signature
    assert scores.bleu == pytest.approx(
        sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES], tokenize="char").score)


def test_mismatched_lengths_are_one_line_errors():
    with pytest.raises(LowresError, match="2 hypotheses for 3 references"):
        score_translations(HYPOTHESES[:2], REFERENCES)


def greedy_reference(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Decode greedily one prompt at a time, without padding."""
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    for _ in range(max_new_tokens):
        with torch.no_grad():
            next_id = model(input_ids=ids).logits[0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    text = tokenizer.decode(ids[0, -max_new_tokens:], skip_special_tokens=True)
    return text.split("\n")[0].strip()


def test_batched_left_padded_generation_matches_one_prompt_at_a_time():
    model, tokenizer = tiny_model("llama")
    model.generation_config.eos_token_id = None
    prompt = plain_prompt("English", "Chichewa")
    sources = ["God is light.", "And the earth was without form, and void, in the beginning."]
    hypotheses = generate_translations(model, tokenizer, sources, prompt=prompt, num_beams=1,
                                       max_new_tokens=6, batch_size=2, stop_at_newline=False)
    expected = [greedy_reference(model, tokenizer, prompt(source), 6) for source in sources]
    # the tiny tokenizer has no newline merge, so no stop tokens fire early in the reference
    assert [h.split("\n")[0].strip() for h in hypotheses] == expected


def test_evaluate_translation_returns_scores_and_hypotheses():
    model, tokenizer = tiny_model("llama")
    scores, hypotheses = evaluate_translation(model, tokenizer, ["God is light."], ["Mulungu ndiye kuwala."],
                                              prompt=plain_prompt("English", "Chichewa"), num_beams=2,
                                              max_new_tokens=4)
    assert len(hypotheses) == 1 and scores.examples == 1
    # the figures are sacrebleu's for the returned hypotheses
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [["Mulungu ndiye kuwala."]]).score)
    assert scores.chrf_pp == pytest.approx(
        sacrebleu.corpus_chrf(hypotheses, [["Mulungu ndiye kuwala."]], word_order=2).score)


def test_generation_is_capped_relative_to_the_source_length():
    model, tokenizer = tiny_model("llama")
    model.generation_config.eos_token_id = None
    source = "God is light."
    capped = generate_translations(model, tokenizer, [source], prompt=plain_prompt("English", "Chichewa"),
                                   num_beams=1, max_new_tokens=64, stop_at_newline=False, length_ratio=0.0)
    uncapped = generate_translations(model, tokenizer, [source], prompt=plain_prompt("English", "Chichewa"),
                                     num_beams=1, max_new_tokens=64, stop_at_newline=False, length_ratio=None)
    assert len(tokenizer(capped[0], add_special_tokens=False)["input_ids"]) <= 8 + 1
    assert uncapped[0].startswith(capped[0]) and len(uncapped[0]) > len(capped[0])


def test_length_ratio_is_the_largest_target_to_source_ratio():
    from lowres_adapters.evaluation.translation import length_ratio_of

    _, tokenizer = tiny_model("llama")
    sources, references = ["ab", "abcd"], ["abcdef", "a"]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in sources + references]
    assert length_ratio_of(tokenizer, sources, references) == pytest.approx(max(1.0, lengths[2] / lengths[0]))
    assert length_ratio_of(tokenizer, ["abcdef"], ["a"]) == 1.0


def test_adapter_models_with_a_broken_cache_still_generate_correctly():
    from lowres_adapters.evaluation.translation import cache_is_filled
    from lowres_adapters.registry import get_registry

    model, tokenizer = tiny_model("llama")
    model.generation_config.eos_token_id = None
    spec = get_registry().adapter_type("lora")
    handle = spec.attach(model, "nya", spec.config_class())
    handle.activate()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    prompt = plain_prompt("English", "Chichewa")
    encoded = tokenizer([prompt("God is light.")], return_tensors="pt")
    if cache_is_filled(handle.model, encoded["input_ids"], encoded["attention_mask"]):
        pytest.skip("this adapters/transformers pair fills the cache: nothing to work around")
    hypotheses = generate_translations(handle.model, tokenizer, ["God is light."], prompt=prompt, num_beams=1,
                                       max_new_tokens=6, stop_at_newline=False, length_ratio=None)
    assert hypotheses[0].split("\n")[0].strip() == greedy_reference(handle.model, tokenizer, prompt("God is light."), 6)
