"""The fast evaluation path gives the figures of the slow one: batched scoring equals one text at a
time, batched generation equals one prompt at a time, each answer keeps its own cap, decoding
controls act and are recorded, and the output checks see loops and the wrong language."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lowres_adapters.evaluation.generation import GenerationSettings, stop_token_ids
from lowres_adapters.evaluation.language_modeling import score_texts, score_token_rows
from lowres_adapters.evaluation.output_checks import distinct_output_share, repeated_ngram_rate, target_language_share
from lowres_adapters.evaluation.translation import ChatPrompt, generate_translations, make_prompt, plain_prompt
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model, tiny_tokenizer

TEXTS = [TINY_CORPUS[0], TINY_CORPUS[1] * 3, "Ndipo", TINY_CORPUS[2], TINY_CORPUS[4] + " " + TINY_CORPUS[5]]
SOURCES = ["And the earth was without form, and void, in the beginning of all things.", "God is light.",
           "In the beginning God created the heaven.", "Light."]


@pytest.fixture(scope="module")
def llama():
    model, tokenizer = tiny_model("llama")
    model.generation_config.eos_token_id = None
    return model, tokenizer


def unbatched_nll(model, ids: list[int], first_scored: int) -> float:
    """Negative log-likelihood of ``ids[first_scored:]``, one row, no padding, plain log-softmax."""
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    return -sum(float(log_probs[position - 1, ids[position]]) for position in range(first_scored, len(ids)))


def test_batched_row_scoring_equals_one_row_at_a_time(llama):
    model, tokenizer = llama
    rows = [([2, *tokenizer(text, add_special_tokens=False)["input_ids"]], 1 + index % 3)
            for index, text in enumerate(TEXTS)]
    expected = sum(unbatched_nll(model, ids, first) for ids, first in rows)
    for batch_size in (1, 2, 8):
        nll, tokens = score_token_rows(model, rows, pad_id=0, batch_size=batch_size)
        assert tokens == sum(len(ids) - first for ids, first in rows)
        assert nll == pytest.approx(expected, rel=1e-5)


def test_score_texts_equals_the_unbatched_sum_in_windows_too(llama):
    model, tokenizer = llama
    for max_length in (512, 12):
        scores = score_texts(model, tokenizer, TEXTS, batch_size=3, max_length=max_length, progress="scoring")
        singles = [score_texts(model, tokenizer, [text], batch_size=1, max_length=max_length) for text in TEXTS]
        assert scores.nll_nats == pytest.approx(sum(single.nll_nats for single in singles), rel=1e-5)
        assert scores.tokens == sum(single.tokens for single in singles)
    whole = [unbatched_nll(model, [2, *tokenizer(text, add_special_tokens=False)["input_ids"]], 1) for text in TEXTS]
    assert score_texts(model, tokenizer, TEXTS, batch_size=4).nll_nats == pytest.approx(sum(whole), rel=1e-5)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_batched_generation_equals_one_prompt_at_a_time_in_the_callers_order(llama, num_beams):
    model, tokenizer = llama
    prompt = plain_prompt("English", "Chichewa")
    settings = GenerationSettings(num_beams=num_beams, max_new_tokens=40, length_ratio=0.5)
    batched = generate_translations(model, tokenizer, SOURCES, prompt=prompt, settings=settings, batch_size=4,
                                    stop_at_newline=False)
    singles = [generate_translations(model, tokenizer, [source], prompt=prompt, settings=settings, batch_size=1,
                                     stop_at_newline=False)[0] for source in SOURCES]
    assert batched == singles
    assert len({*batched}) > 1  # different prompts, different answers: the order really is checked


def test_each_answer_keeps_its_own_length_cap_in_a_shared_batch(llama):
    model, tokenizer = llama
    settings = GenerationSettings(num_beams=2, max_new_tokens=60, length_ratio=1.0)
    answers = generate_translations(model, tokenizer, SOURCES, prompt=plain_prompt("English", "Chichewa"),
                                    settings=settings, batch_size=4, stop_at_newline=False)
    for source, answer in zip(SOURCES, answers):
        cap = len(tokenizer(source, add_special_tokens=False)["input_ids"]) + 8
        produced = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert produced <= cap + 1  # re-tokenising the decoded text may merge or split one token
    short, long = (len(tokenizer(answers[i], add_special_tokens=False)["input_ids"]) for i in (3, 0))
    assert short < long


def test_no_repeat_ngram_size_and_repetition_penalty_change_looping_output(llama):
    model, tokenizer = llama
    prompt = plain_prompt("English", "Chichewa")
    plain = GenerationSettings(num_beams=1, max_new_tokens=30, length_ratio=None)
    looping = generate_translations(model, tokenizer, ["God is light."], prompt=prompt, settings=plain,
                                    stop_at_newline=False)[0]
    assert repeated_ngram_rate([looping], n=2) > 0  # a random tiny model loops: the control has work to do
    for settings in (GenerationSettings(num_beams=1, max_new_tokens=30, length_ratio=None, no_repeat_ngram_size=2),
                     GenerationSettings(num_beams=1, max_new_tokens=30, length_ratio=None, repetition_penalty=5.0)):
        controlled = generate_translations(model, tokenizer, ["God is light."], prompt=prompt, settings=settings,
                                           stop_at_newline=False)[0]
        assert controlled != looping


def test_an_answer_never_ends_before_its_first_token():
    model, tokenizer = tiny_model("llama")  # its own copy: the head is changed below
    word = tokenizer("Mulungu", add_special_tokens=False)["input_ids"][0]
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():  # the end token always first, then one word: what a CPT stage often does
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = 100.0
        head.bias[word] = 90.0
    model.lm_head = head
    for num_beams in (1, 2):
        answers = generate_translations(model, tokenizer, ["God is light.", "Light."], prompt=plain_prompt(
            "English", "Chichewa"), settings=GenerationSettings(num_beams=num_beams, max_new_tokens=5))
        assert answers == [tokenizer.decode([word]).strip()] * 2


def test_every_token_holding_a_newline_ends_a_one_line_answer():
    tokenizer = tiny_tokenizer(vocab_size=600, corpus=("one.\n\ntwo\n three.\n", "a\n\nb\nc.\n") * 40)
    tokenizer.add_tokens([".\n\n", "\nAnd"])
    stops = set(stop_token_ids(tokenizer, stop_at_newline=True))
    with_newline = {token_id for token_id in range(len(tokenizer)) if "\n" in tokenizer.decode([token_id])}
    assert len(with_newline) > 1 and with_newline <= stops
    assert tokenizer.eos_token_id in stops
    assert not with_newline & set(stop_token_ids(tokenizer, stop_at_newline=False))


def test_chat_prompt_uses_the_tokenizers_template_and_plain_needs_none(llama):
    _, tokenizer = llama
    tokenizer = tiny_tokenizer()
    with pytest.raises(Exception, match="chat template"):
        make_prompt(tokenizer, "English", "Chichewa", prompt_format="chat")
    tokenizer.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
                               "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
    prompt = make_prompt(tokenizer, "English", "Chichewa", prompt_format="chat")
    assert isinstance(prompt, ChatPrompt) and prompt.includes_special_tokens
    built = prompt("God is light.")
    assert built.startswith("<s>user\n") and built.endswith("<s>assistant\n") and "into Chichewa" in built
    with pytest.raises(Exception, match="prompt format"):
        make_prompt(tokenizer, "English", "Chichewa", prompt_format="markdown")


def test_distinct_output_share_sees_a_model_that_answers_everything_alike():
    collapsed = ["གནས་སེལ།", "གནས་སེལ། ", "གནས་སེལ།", "སྒྲམ་དང།"]  # dzo SFT seed 0: one phrase for most sources
    assert distinct_output_share(collapsed) == pytest.approx(2 / 4)
    assert distinct_output_share(["Mulungu", "dziko", "kuwala"]) == 1.0
    assert distinct_output_share([]) == 0.0


def test_repeated_ngram_rate_sees_loops_and_not_plain_text():
    assert repeated_ngram_rate(["Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi."]) == 0.0
    assert repeated_ngram_rate(["ndipo ndipo ndipo ndipo ndipo ndipo"]) == pytest.approx(3 / 4)
    assert repeated_ngram_rate(["ཀཁགངཀཁགངཀཁགངཀཁགང"]) > 0.5  # characters for unspaced scripts
    assert repeated_ngram_rate([]) == 0.0


def test_target_language_share_tells_chichewa_from_english_and_other_scripts():
    chichewa, english = [TINY_CORPUS[0], TINY_CORPUS[2], TINY_CORPUS[4]], [TINY_CORPUS[1], TINY_CORPUS[3]]
    outputs = ["Mulungu ndiye kuwala ndi dziko", "God is light and the earth", "", "Бог есть свет"]
    assert target_language_share(outputs, chichewa, english) == pytest.approx(1 / 4)
    assert target_language_share(outputs, english, chichewa) == pytest.approx(1 / 4)


def test_evaluate_records_decoding_settings_and_output_checks_in_metrics(tmp_path):
    from _eval_runs import save_tiny_base, write_tiny_run
    from click.testing import CliRunner

    from lowres_adapters.artifact import read_metadata
    from lowres_adapters.cli import cli
    from lowres_adapters.evaluation.translation import length_ratio_of
    from lowres_adapters.runs.evaluate import held_out_data, read_json
    from transformers import AutoTokenizer

    run = write_tiny_run(tmp_path / "run", save_tiny_base(tmp_path / "base"))
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--json", "--max-examples", "3", "--num-beams", "1",
                                       "--no-repeat-ngram-size", "3", "--repetition-penalty", "1.3",
                                       "--max-new-tokens", "7"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    recorded = json.loads((run / "metrics.json").read_text())["evaluate"]
    assert recorded["generation"] == printed["generation"]
    assert {key: recorded["generation"][key] for key in ("num_beams", "no_repeat_ngram_size", "repetition_penalty",
                                                         "max_new_tokens")} == {
        "num_beams": 1, "no_repeat_ngram_size": 3, "repetition_penalty": 1.3, "max_new_tokens": 7}
    held_out = held_out_data(read_metadata(run), read_json(run / "run_config.json"), max_examples=3,
                             translation_examples=32)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "base"))
    # the answer cap actually used: calibrated on the held-out pairs, not the 3.0 default
    assert recorded["generation"]["length_ratio"] == length_ratio_of(tokenizer, held_out.sources, held_out.references)
    for role in ("base", "adapted"):
        assert 0.0 <= recorded[role]["target_language_share"] <= 1.0
        assert math.isfinite(recorded[role]["repeated_ngram_rate"])
        assert 0.0 < recorded[role]["distinct_output_share"] <= 1.0
        assert recorded[role]["bits_per_char"] == printed[role]["bits_per_char"]


def test_held_out_pairs_keep_one_direction_when_the_pack_mixes_source_languages(monkeypatch):
    """dzo's test pairs mix Chinese and English sources: the prompt names one source language, so only
    pairs in that direction may be asked (else English sources are asked as "Chinese")."""
    import lowres_adapters.runs.evaluate as evaluate
    from lowres_adapters.artifact import ArtifactMetadata
    from lowres_adapters.data.examples import PackData, PairExample, TextExample

    pairs = [PairExample(f"zh{i}", f"dz{i}", "zho", "dzo", f"z{i}") if i % 3 else
             PairExample(f"en{i}", f"dz{i}", "eng", "dzo", f"e{i}") for i in range(1, 13)]
    data = PackData(text={"test": [TextExample(text=f"t{i}", id=str(i), lang="dzo") for i in range(5)]},
                    pairs={"test": pairs})
    monkeypatch.setattr(evaluate, "load_run_data", lambda language, settings: (data, None))
    metadata = ArtifactMetadata(adapter_type="lora", adapter_name="dzo", adapter_config={}, plugin=None,
                                base_model="x", objective="clm", language="dzo", script="Tibt", recipe="sft")
    held_out = evaluate.held_out_data(metadata, {}, max_examples=None, translation_examples=32)
    assert (held_out.source_lang, held_out.target_lang) == ("zho", "dzo")
    assert held_out.sources == [f"zh{i}" for i in range(1, 13) if i % 3]
    assert held_out.references == [f"dz{i}" for i in range(1, 13) if i % 3]
