"""What makes ``lowres evaluate`` fast keeps its figures: shared key/value heads, the prompt prefilled once
for all beams, the adapter merged for inference, and base scores and hypotheses reused only for the
same model, prompts and settings."""

from __future__ import annotations

import json

import pytest

from _eval_runs import save_tiny_base, write_tiny_run
from lowres_adapters.evaluation import fast_attention, generation
from lowres_adapters.evaluation.fast_attention import grouped_query_attention
from lowres_adapters.evaluation.generation import GenerationSettings
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.evaluation.translation import generate_translations, plain_prompt
from lowres_adapters.runs import evaluate as evaluate_module
from lowres_adapters.runs.evaluate import evaluate_run, inference_model
from lowres_adapters.runs.snapshots import load_run
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model

SOURCES = ["And the earth was without form, and void, in the beginning of all things.", "God is light.",
           "In the beginning God created the heaven.", "Light."]
PAIRS = [("God is light.", "Mulungu ndiye kuwala."), ("And the earth was void.", "Dziko lapansi linali lopanda kanthu.")]


@pytest.fixture(scope="module")
def llama():
    model, tokenizer = tiny_model("llama", initializer_range=0.3)  # outputs that depend on the prompt
    model.generation_config.eos_token_id = None
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped-query attention
    return model, tokenizer


def test_shared_key_value_heads_score_as_repeated_ones_and_the_model_is_put_back(llama, monkeypatch):
    model, tokenizer = llama
    assert fast_attention.applies_to(model)
    fast = score_texts(model, tokenizer, TINY_CORPUS, batch_size=3)
    with grouped_query_attention(model) as switched:
        assert switched and model.config._attn_implementation == fast_attention.GQA_SDPA
    assert model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(fast_attention, "applies_to", lambda model: False)
    plain = score_texts(model, tokenizer, TINY_CORPUS, batch_size=3)
    assert fast.nll_nats == pytest.approx(plain.nll_nats, rel=1e-6) and fast.tokens == plain.tokens


@pytest.mark.parametrize("num_beams", [2, 3])
def test_prompt_prefilled_once_for_all_beams_generates_what_generate_alone_does(llama, monkeypatch, num_beams):
    model, tokenizer = llama
    settings = GenerationSettings(num_beams=num_beams, max_new_tokens=30, length_ratio=1.0)
    prompt = plain_prompt("English", "Chichewa")
    calls = []
    original = generation.prompt_cache
    monkeypatch.setattr(generation, "prompt_cache", lambda *args: calls.append(1) or original(*args))
    shared = generate_translations(model, tokenizer, SOURCES, prompt=prompt, settings=settings, batch_size=4,
                                   stop_at_newline=False)
    assert calls  # the shared prefill really ran (prompts of different lengths, left-padded)
    monkeypatch.setattr(generation, "PreTrainedModel", type("NoModel", (), {}))  # generate() prefills alone
    alone = generate_translations(model, tokenizer, SOURCES, prompt=prompt, settings=settings, batch_size=4,
                                  stop_at_newline=False)
    assert len(calls) == 1
    assert shared == alone and len(set(alone)) > 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast")
    base = save_tiny_base(root / "base")
    (root / "heldout.txt").write_text("\n".join(TINY_CORPUS[::2]) + "\n")
    (root / "pairs.tsv").write_text("".join(f"{source}\t{target}\n" for source, target in PAIRS))
    folders = {}
    for adapter_type in ("lora", "seq_bn"):
        run = write_tiny_run(root / adapter_type, base, adapter_type=adapter_type, language="tum", scale=0.3)
        (run / "run_config.json").write_text(json.dumps({"settings": {"data": {
            "eval_text": str(root / "heldout.txt"), "eval_pairs": str(root / "pairs.tsv"), "eval_examples": 300}}}))
        folders[adapter_type] = run
    return folders


def test_lora_merged_for_inference_scores_and_translates_as_the_attached_adapter(runs):
    attached = load_run(runs["lora"])
    before = score_texts(attached.model, attached.tokenizer, TINY_CORPUS, batch_size=2)
    settings = GenerationSettings(num_beams=2, max_new_tokens=12)
    prompt = plain_prompt("English", "Chichewa")
    hypotheses = generate_translations(attached.model, attached.tokenizer, SOURCES, prompt=prompt, settings=settings)
    base = score_texts(tiny_model("llama")[0], attached.tokenizer, TINY_CORPUS, batch_size=2)
    assert abs(before.bits_per_char - base.bits_per_char) > 1e-3  # the adapter changes the figures

    merged = inference_model(load_run(runs["lora"]))
    layers = [module for module in merged.modules() if getattr(module, "loras", None)]  # layers holding a LoRA
    assert layers and all(layer.merged for layer in layers)  # folded in: no LoRA work per token
    after = score_texts(merged, attached.tokenizer, TINY_CORPUS, batch_size=2)
    assert after.bits_per_char == pytest.approx(before.bits_per_char, abs=1e-5)
    assert generate_translations(merged, attached.tokenizer, SOURCES, prompt=prompt, settings=settings) == hypotheses


def test_a_bottleneck_adapter_is_evaluated_as_loaded(runs):
    loaded = load_run(runs["seq_bn"])
    assert inference_model(loaded) is loaded.model


@pytest.fixture
def pinned(tmp_path, monkeypatch):
    """The tiny base counts as pinned (cached) and every base-model load is counted."""
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("lowres_adapters.training.base_scores.model_revision", lambda model_id: "rev1")
    loads, scored, generated = [], [], []
    original_load, original_score, original_generate = (evaluate_module.load_base_model, evaluate_module.score_texts,
                                                        evaluate_module.generate_answers)

    def load(*args, **kwargs):
        loads.append(1)
        return original_load(*args, **kwargs)

    def score(model, *args, **kwargs):
        scored.append(model)
        return original_score(model, *args, **kwargs)

    def generate(model, *args, **kwargs):
        generated.append(model)
        return original_generate(model, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "load_base_model", load)
    monkeypatch.setattr(evaluate_module, "score_texts", score)
    monkeypatch.setattr(evaluate_module, "generate_answers", generate)
    return loads, scored, generated


def test_base_scores_and_hypotheses_are_reused_only_for_the_same_model_prompts_and_settings(runs, pinned):
    loads, scored, generated = pinned
    options = {"num_beams": 1, "max_new_tokens": 6, "base_prompt": "run", "record": False, "progress": False}
    first = evaluate_run(runs["lora"], **options)
    assert (len(loads), len(scored), len(generated)) == (1, 2, 2)  # base and adapted, each scored and translated

    again = evaluate_run(runs["lora"], **options)
    assert (len(loads), len(scored), len(generated)) == (1, 3, 3)  # only the adapted model ran
    assert again["base"] == first["base"] and again["samples"] == first["samples"]

    evaluate_run(runs["lora"], **{**options, "num_beams": 2})  # other decoding: translations again, scores kept
    assert (len(loads), len(scored), len(generated)) == (2, 4, 5)
    evaluate_run(runs["lora"], **{**options, "base_prompt": "plain",  # same format as "run" here: same prompts
                                  "generation_batch_size": 1, "batch_size": 1})
    assert (len(loads), len(scored), len(generated)) == (2, 5, 6)
    evaluate_run(runs["lora"], **{**options, "max_examples": 1})  # other texts and pairs: everything again
    assert (len(loads), len(scored), len(generated)) == (3, 7, 8)

    monkeypatch_revision = "lowres_adapters.training.base_scores.model_revision"
    with pytest.MonkeyPatch.context() as patch:  # another revision of the same model id: nothing reused
        patch.setattr(monkeypatch_revision, lambda model_id: "rev2")
        evaluate_run(runs["lora"], **options)
    assert (len(loads), len(scored), len(generated)) == (4, 9, 10)


def test_the_base_is_asked_in_its_own_prompt_and_cached_per_prompt(runs, pinned, monkeypatch):
    loads, _, generated = pinned
    options = {"num_beams": 1, "max_new_tokens": 6, "record": False, "progress": False}
    monkeypatch.setattr(evaluate_module, "prompt_for", lambda role, tokenizer, held_out, opts: (
        plain_prompt("English", "Tumbuka", "Say in {target_name}: {source}\n") if role == "base"
        else plain_prompt("English", "Tumbuka"), "plain"))
    evaluate_run(runs["lora"], **options)
    evaluate_run(runs["lora"], **options)
    assert len(loads) == 1 and len(generated) == 3
    prompts = []
    monkeypatch.setattr(evaluate_module, "prompt_for", lambda role, tokenizer, held_out, opts: (
        plain_prompt("English", "Tumbuka", "Translate to {target_name}: {source}\n"), "plain"))
    original = evaluate_module.translation_inputs
    monkeypatch.setattr(evaluate_module, "translation_inputs",
                        lambda *args: prompts.append(original(*args).prompts) or original(*args))
    evaluate_run(runs["lora"], **options)  # a new base prompt: the base translates again
    assert len(loads) == 2 and len(generated) == 5 and prompts[0][0].startswith("Translate to Tumbuka")


def test_a_cold_base_cache_is_filled_with_both_parts(runs, pinned, tmp_path):
    evaluate_run(runs["lora"], num_beams=1, max_new_tokens=4, record=False, progress=False)
    entries = [json.loads(path.read_text()) for path in (tmp_path / "cache" / "base-scores").glob("*.json")]
    assert sorted(sorted(entry) for entry in entries) == [sorted(
        ["bits_per_char", "bits_per_byte", "chars", "bytes", "loss_per_token", "nll_nats", "objective",
         "perplexity", "texts", "tokens"]), ["hypotheses"]]
    assert all(isinstance(text, str) for entry in entries if "hypotheses" in entry for text in entry["hypotheses"])



def test_two_workers_give_the_figures_and_hypotheses_of_one(runs):
    options = {"num_beams": 2, "max_new_tokens": 6, "record": False, "progress": False, "skip_base": False,
               "generation_batch_size": 1, "batch_size": 1}
    one = evaluate_run(runs["lora"], workers=1, **options)
    two = evaluate_run(runs["lora"], workers=2, **options)
    assert two["samples"] == one["samples"] and two["base"]["chrf_pp"] == one["base"]["chrf_pp"]
    for role in ("base", "adapted"):
        assert two[role]["bits_per_char"] == pytest.approx(one[role]["bits_per_char"], rel=1e-9)
        assert two[role]["tokens"] == one[role]["tokens"]
