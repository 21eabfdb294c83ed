"""Speed options applied to a loop job: same loss as the plain job, and training still works."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.fast_lm import split_lm_model
from lowres_adapters.training.lm_objectives import CAUSAL_LM, MASKED_LM
from lowres_adapters.training.loop import TrainingJob, train
from lowres_adapters.training.settings import LoopSettings
from lowres_adapters.training.speed import (
    SpeedOptions, count_real_tokens, speed_up_for_loop, speed_up_job, tokenize_texts,
)

ROW = 128
TEXTS = list(TINY_CORPUS) + ["Amen.", "Ndipo Mulungu anati, Kukhale kuwala; ndipo kunali kuwala."]


def _job(kind: str) -> tuple[TrainingJob, object, str]:
    model, tokenizer = tiny_model(kind)
    objective = CAUSAL_LM if kind == "llama" else MASKED_LM
    features = objective.tokenize(tokenizer, TEXTS, ROW)
    job = TrainingJob(model=model, parameters=dict(model.named_parameters()), train_features=features,
                      collate=objective.collator(tokenizer), loss_fn=objective.loss)
    return job, tokenizer, objective


def _weighted_loss(job: TrainingJob, generator_seed: int = 0) -> tuple[float, int]:
    batch = job.collate(job.train_features, torch.Generator().manual_seed(generator_seed))
    with torch.no_grad():
        loss, count = job.loss_fn(job.model, batch)
    return float(loss), count


def test_packed_fast_causal_job_gives_the_plain_loss():
    job, tokenizer, objective = _job("llama")
    options = SpeedOptions.fast(vocab_trim=False, token_cache=False)
    fast = speed_up_job(job, options, objective=objective, tokenizer=tokenizer, row_length=ROW)
    assert len(fast.train_features) < len(job.train_features)  # rows were packed
    plain_loss, plain_count = _weighted_loss(job)
    fast_loss, fast_count = _weighted_loss(fast)
    assert fast_count == plain_count
    assert fast_loss == pytest.approx(plain_loss, rel=1e-5)


def test_unpacked_fast_masked_job_gives_the_plain_loss_on_the_same_masks():
    job, tokenizer, objective = _job("xlmr")
    options = SpeedOptions.fast(packing=False, vocab_trim=False, token_cache=False)
    fast = speed_up_job(job, options, objective=objective, tokenizer=tokenizer, row_length=ROW)
    assert fast.collate is job.collate
    assert _weighted_loss(fast, 4) == pytest.approx(_weighted_loss(job, 4), rel=1e-5)


def test_bf16_autocast_stays_close_to_float32():
    job, tokenizer, objective = _job("llama")
    plain_options = SpeedOptions.fast(packing=False, vocab_trim=False, token_cache=False)
    reference = speed_up_job(job, plain_options, objective=objective, tokenizer=tokenizer, row_length=ROW)
    bf16 = speed_up_job(job, plain_options.replace(bf16=True), objective=objective, tokenizer=tokenizer,
                        row_length=ROW)
    assert _weighted_loss(bf16)[0] == pytest.approx(_weighted_loss(reference)[0], rel=2e-2)


def test_trimmed_vocabulary_covers_training_and_validation_ids():
    job, tokenizer, objective = _job("xlmr")
    job = dataclasses.replace(job, eval_features=objective.tokenize(tokenizer, ["Zebra quiz!"], ROW))
    fast = speed_up_job(job, SpeedOptions.fast(token_cache=False), objective=objective, tokenizer=tokenizer,
                        row_length=ROW)
    kept = set(fast.loss_fn.trim.kept_ids.tolist())
    used = {token for feature in job.train_features + job.eval_features for token in feature["input_ids"]}
    assert used <= kept and set(tokenizer.all_special_ids) <= kept
    assert len(kept) < job.model.config.vocab_size


@pytest.mark.parametrize("kind", ["llama", "xlmr"])
def test_the_loop_trains_with_every_default_option(kind):
    job, tokenizer, objective = _job(kind)
    fast = speed_up_job(job, SpeedOptions.fast(token_cache=False), objective=objective, tokenizer=tokenizer,
                        row_length=ROW)
    before = _weighted_loss(fast, 1)[0]
    settings = LoopSettings(max_steps=8, batch_size=2, lr=1e-2, schedule="constant", progress=False)
    result = train(fast, settings)
    assert result.steps == 8
    # Real tokens only: packed rows are padded to ROW, and the padding is not counted.
    assert 0 < result.tokens_seen < 8 * 2 * ROW
    fast.model.eval()
    assert _weighted_loss(fast, 1)[0] < before


def test_gradient_checkpointing_gives_the_same_gradients():
    job, tokenizer, objective = _job("llama")
    plain = speed_up_job(job, SpeedOptions.fast(token_cache=False, vocab_trim=False), objective=objective,
                         tokenizer=tokenizer, row_length=ROW)
    batch = plain.collate(plain.train_features, torch.Generator())
    job.model.train()
    plain.loss_fn(job.model, batch)[0].backward()
    expected = {n: p.grad.clone() for n, p in job.model.named_parameters() if p.grad is not None}
    job.model.zero_grad()
    checkpointing = SpeedOptions.fast(token_cache=False, vocab_trim=False, gradient_checkpointing=True)
    checkpointed = speed_up_job(job, checkpointing, objective=objective, tokenizer=tokenizer, row_length=ROW)
    checkpointed.loss_fn(job.model, batch)[0].backward()
    assert job.model.is_gradient_checkpointing
    for name, grad in expected.items():
        torch.testing.assert_close(dict(job.model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)


def test_count_real_tokens_for_plain_and_packed_batches():
    padded = {"input_ids": torch.zeros(2, 5), "attention_mask": torch.tensor([[1] * 5, [1, 1, 0, 0, 0]])}
    assert count_real_tokens(padded) == 7
    assert count_real_tokens({"input_ids": torch.zeros(2, 5), "token_mask": torch.ones(2, 4)}) == 8


def test_options_are_validated_and_tokenize_texts_uses_the_cache(tmp_path, monkeypatch):
    with pytest.raises(LowresError):
        SpeedOptions.fast(masked_only_logits=False)  # vocab_trim is on by default
    with pytest.raises(LowresError):
        SpeedOptions.fast(chunk_size=0)
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path))
    _, tokenizer = tiny_model("llama")
    cached = tokenize_texts("clm", tokenizer, TEXTS, 32, SpeedOptions.fast())
    assert cached == tokenize_texts("clm", tokenizer, TEXTS, 32, SpeedOptions.fast(token_cache=False))
    assert list((tmp_path / "tokens").iterdir())


def test_split_refuses_models_without_a_separable_head():
    with pytest.raises(LowresError):
        split_lm_model(torch.nn.Linear(3, 3))


class _PromptWrapper(torch.nn.Module):
    """Stands for a soft-prompt wrapper: a forward that does more than the transformers model's."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.base_model = model

    def forward(self, **inputs):
        return self.base_model(**inputs)


def test_loop_settings_switch_the_options_and_unsupported_models_fall_back(capsys):
    job, tokenizer, objective = _job("llama")
    assert speed_up_for_loop(job, LoopSettings(), objective=objective, tokenizer=tokenizer) is job
    loop = LoopSettings(packing=True, masked_only_logits=True, vocab_trim=True, max_length=ROW)
    assert loop.speed == SpeedOptions.fast(token_cache=False)
    head = job.model.get_output_embeddings().weight
    adapter_like = dataclasses.replace(job, parameters={n: p for n, p in job.parameters.items() if p is not head})
    fast = speed_up_for_loop(adapter_like, loop, objective=objective, tokenizer=tokenizer)
    assert len(fast.train_features) < len(job.train_features) and fast.loss_fn.trim is not None
    assert "vocabulary trimming off" not in capsys.readouterr().err
    every_weight = speed_up_for_loop(job, loop, objective=objective, tokenizer=tokenizer)  # the head trains
    assert every_weight.loss_fn.trim is None and "vocabulary trimming off" in capsys.readouterr().err
    wrapped = dataclasses.replace(job, model=_PromptWrapper(job.model))
    fallback = speed_up_for_loop(wrapped, loop, objective=objective, tokenizer=tokenizer)
    assert fallback.train_features == job.train_features and fallback.collate is job.collate
    assert "off for" in capsys.readouterr().err
    with pytest.raises(ValueError, match="vocab_trim needs masked_only_logits"):
        LoopSettings(vocab_trim=True)


def test_the_fast_training_example_runs(capsys):
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "fast_training.py"
    figures = runpy.run_path(str(example))["main"]()
    assert figures["fast_loss"] == pytest.approx(figures["plain_loss"], rel=1e-5)
    assert figures["final_loss"] < figures["plain_loss"]
    assert "packed into" in capsys.readouterr().out
