"""SFT trains in the prompt format that ``lowres evaluate`` asks in: plain or the chat template."""

from __future__ import annotations

import pytest

from lowres_adapters.configs import config_to_dict
from lowres_adapters.runs.evaluate import generation_settings
from lowres_adapters.evaluation.translation import CHAT_INSTRUCTION, DEFAULT_PROMPT, make_prompt
from lowres_adapters.testing.tiny import tiny_tokenizer
from lowres_adapters.training.batching import IGNORE_INDEX
from lowres_adapters.training.recipes.cpt_sft import CptSftOptions, SftOptions, sft_feature

TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant\n{% endif %}")


@pytest.fixture()
def tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def test_chat_feature_prompt_is_what_evaluation_asks_and_only_the_answer_is_labelled(tokenizer):
    prompt_format, template = SftOptions().in_format(tokenizer)  # "auto": the tokenizer has a chat template
    assert prompt_format == "chat"
    instruction = template.format(source="God is light.", source_name="English", target_name="Chichewa")
    feature = sft_feature(tokenizer, instruction, " Mulungu ndiye kuwala.", 1024, "chat")
    asked = make_prompt(tokenizer, "English", "Chichewa", prompt_format="auto")("God is light.")
    prompt_ids = tokenizer(asked, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer("Mulungu ndiye kuwala.", add_special_tokens=False)["input_ids"]
    assert feature["input_ids"] == prompt_ids + answer_ids + [tokenizer.eos_token_id]
    assert feature["labels"] == [IGNORE_INDEX] * len(prompt_ids) + answer_ids + [tokenizer.eos_token_id]


def test_plain_feature_keeps_the_plain_prompt_and_options_pick_the_formats_template(tokenizer):
    assert SftOptions().in_format(tiny_tokenizer()) == ("plain", DEFAULT_PROMPT)  # "auto", no chat template
    assert SftOptions(prompt_format="plain").in_format(tokenizer) == ("plain", DEFAULT_PROMPT)
    assert SftOptions(prompt_format="chat").in_format(tokenizer) == ("chat", CHAT_INSTRUCTION)
    assert SftOptions(prompt="{source} ->").in_format(tokenizer) == ("chat", "{source} ->")
    feature = sft_feature(tokenizer, "Translate: God", " Mulungu", 64, "plain")
    assert feature["input_ids"][0] == tokenizer.bos_token_id
    assert "<s>user" not in tokenizer.decode(feature["input_ids"])


def test_chat_format_without_a_chat_template_and_bad_options_are_refused():
    with pytest.raises(Exception, match="chat template"):
        sft_feature(tiny_tokenizer(), "Translate", " x", 64, "chat")
    with pytest.raises(ValueError, match="prompt_format"):
        SftOptions(prompt_format="markdown")
    with pytest.raises(Exception, match="num_beams"):
        CptSftOptions(num_beams=0)


def test_the_runs_decoding_options_are_evaluations_defaults_and_the_command_line_wins():
    recorded = {"num_beams": 1, "no_repeat_ngram_size": 3, "repetition_penalty": None, "prompt": None}
    settings = generation_settings(recorded)
    assert (settings.num_beams, settings.no_repeat_ngram_size, settings.repetition_penalty) == (1, 3, 1.0)
    recorded_by_default = config_to_dict(CptSftOptions())  # what a cpt_sft run with its defaults records
    assert (generation_settings(recorded_by_default).num_beams, generation_settings(recorded_by_default)
            .no_repeat_ngram_size) == (CptSftOptions.num_beams, CptSftOptions.no_repeat_ngram_size)
    overridden = generation_settings(recorded, num_beams=4, repetition_penalty=1.2, max_new_tokens=None)
    assert (overridden.num_beams, overridden.repetition_penalty, overridden.max_new_tokens) == (4, 1.2, 256)
