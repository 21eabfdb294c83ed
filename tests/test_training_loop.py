"""The one loop: what trains, accumulation, seeds, evaluation, early stopping, in-process resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.batching import CausalCollator, tokenize_for_clm
from lowres_adapters.training.checkpoint import checkpoint_steps
from lowres_adapters.training.loop import TrainingJob, epoch_order, select_parameters, train
from lowres_adapters.training.objectives import causal_lm_loss
from lowres_adapters.training.settings import LoopSettings

PATTERNS = ("*q_proj*", "*down_proj*")


def make_job(eval_features: bool = False, loss_fn=causal_lm_loss, dropout: float = 0.0) -> TrainingJob:
    model, tokenizer = tiny_model("llama", attention_dropout=dropout)
    features = tokenize_for_clm(tokenizer, list(TINY_CORPUS) * 4, 64)
    return TrainingJob(model=model, parameters=select_parameters(model, PATTERNS), train_features=features,
                       collate=CausalCollator(tokenizer.pad_token_id), loss_fn=loss_fn,
                       eval_features=features[:6] if eval_features else None)


def settings(**changes) -> LoopSettings:
    values = dict(max_steps=8, lr=1e-2, batch_size=4, progress=False)
    values.update(changes)
    return LoopSettings(**values)


def snapshot(job: TrainingJob) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in job.model.named_parameters()}


def test_only_the_given_parameters_change_and_the_loss_falls():
    job = make_job()
    before = snapshot(job)
    result = train(job, settings(max_steps=30, lr=3e-2))
    after = snapshot(job)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == set(job.parameters)
    assert result.trainable_parameters == sum(p.numel() for p in job.parameters.values())
    first = result.history[0]["loss"]
    assert result.final_loss < first


def test_accumulation_gives_the_same_update_as_one_big_batch():
    whole, accumulated = make_job(), make_job()
    one = train(whole, settings(batch_size=8, grad_accum_steps=1))
    four = train(accumulated, settings(batch_size=8, grad_accum_steps=4))
    # the logged loss is the token-weighted mean of the whole global batch either way
    assert [r["loss"] for r in four.history] == pytest.approx([r["loss"] for r in one.history], rel=1e-5)
    for name, parameter in whole.parameters.items():
        torch.testing.assert_close(parameter, accumulated.parameters[name], rtol=1e-3, atol=1e-4)


def test_same_seed_same_weights_other_seed_other_weights():
    first, second, third = make_job(), make_job(), make_job()
    train(first, settings(seed=3))
    train(second, settings(seed=3))
    train(third, settings(seed=4))
    name = sorted(first.parameters)[0]
    assert torch.equal(first.parameters[name], second.parameters[name])
    assert not torch.equal(first.parameters[name], third.parameters[name])


def test_epoch_order_is_a_seeded_permutation_reshuffled_every_epoch():
    orders = [epoch_order(10, 1, epoch) for epoch in range(3)]
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert orders[0] != list(range(10)) and len({tuple(order) for order in orders}) == 3
    assert epoch_order(10, 2, 0) != orders[0]


def test_epochs_set_the_number_of_steps():
    job = make_job()
    result = train(job, LoopSettings(epochs=2, batch_size=8, lr=1e-3, progress=False))
    assert result.steps == math.ceil(2 * len(job.train_features) / 8)


def test_warmup_and_cosine_schedule_reach_the_logged_learning_rates(tmp_path):
    train(make_job(), settings(max_steps=10, lr=0.1, warmup_steps=4, schedule="cosine", min_lr_ratio=0.0), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    rates = [r["lr"] for r in records if r["event"] == "train"]
    assert rates[:4] == pytest.approx([0.02, 0.04, 0.06, 0.08])
    assert rates[4] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))


def test_evaluation_every_n_steps_is_logged_and_is_the_token_weighted_held_out_loss(tmp_path):
    job = make_job(eval_features=True)
    result = train(job, settings(max_steps=6, eval_every=2), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6]
    # the last evaluation scored the final weights: recompute it one example at a time with the model's own loss
    total, tokens = 0.0, 0
    with torch.no_grad():
        for feature in job.eval_features:
            ids = torch.tensor([feature["input_ids"]])
            total += float(job.model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
            tokens += ids.shape[1] - 1
    assert result.eval_loss == pytest.approx(total / tokens, rel=1e-5)
    assert evals[-1]["eval_loss"] == pytest.approx(result.eval_loss)
    best = min(evals, key=lambda r: r["eval_loss"])
    assert (result.best_eval_loss, result.best_step) == (pytest.approx(best["eval_loss"]), best["step"])
    assert evals[0]["eval_loss"] != pytest.approx(evals[-1]["eval_loss"])  # training moved the held-out loss


def test_early_stopping_stops_and_restores_the_best_weights():
    def rising_eval_loss(model, batch):
        loss, count = causal_lm_loss(model, batch)
        if model.training:
            return loss, count
        return loss * 0 + float(rising_eval_loss.evals), count

    rising_eval_loss.evals = 0
    job = make_job(eval_features=True, loss_fn=rising_eval_loss)
    weights_at = {}

    def record(report):
        weights_at[report.step] = {n: p.detach().clone() for n, p in job.parameters.items()}
        if report.eval_loss is not None:
            rising_eval_loss.evals += 1

    # the first evaluation (step 1) scores 0, later ones 1, 2, ...: patience 2 stops at step 3
    result = train(job, settings(max_steps=20, eval_every=1, early_stopping_patience=2), callbacks=[record])
    assert result.stopped_early and result.steps == 3 and result.best_step == 1
    for name, parameter in job.parameters.items():
        assert torch.equal(parameter, weights_at[1][name])


def test_resume_after_a_crash_gives_the_uninterrupted_weights(tmp_path):
    """With dropout (the global RNG) and a checkpoint in the middle of the second epoch (6 steps each)."""
    reference = make_job(dropout=0.2)
    train(reference, settings(max_steps=10), tmp_path / "reference")
    without_dropout = make_job()
    train(without_dropout, settings(max_steps=10))
    assert any(not torch.equal(p, without_dropout.parameters[n]) for n, p in reference.parameters.items())

    crashed = make_job(dropout=0.2)

    def crash(report):
        if report.step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(crashed, settings(max_steps=10, save_every=4, keep_checkpoints=2), tmp_path / "run", callbacks=[crash])
    assert checkpoint_steps(tmp_path / "run") == [4, 8]

    resumed = make_job(dropout=0.2)  # a fresh process would start from the base weights
    result = train(resumed, settings(max_steps=10, save_every=4), tmp_path / "run", resume=True)
    assert result.resumed_from == 8 and result.steps == 10
    for name, parameter in reference.parameters.items():
        assert torch.equal(parameter, resumed.parameters[name])
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(1, 11))
    assert checkpoint_steps(tmp_path / "run") == []  # removed once the run completed


def test_a_checkpoint_of_other_parameters_is_refused(tmp_path):
    def crash(report):
        if report.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_job(), settings(save_every=1), tmp_path, callbacks=[crash])
    other = make_job()
    other.parameters = select_parameters(other.model, ["*k_proj*"])
    with pytest.raises(LowresError, match="different parameters"):
        train(other, settings(save_every=1), tmp_path, resume=True)


def test_batch_that_does_not_split_over_accumulation_is_one_line_error():
    with pytest.raises(ValueError, match="divisible"):
        LoopSettings(batch_size=6, grad_accum_steps=4)


def test_a_pattern_matching_nothing_is_refused():
    model, _ = tiny_model("llama")
    with pytest.raises(LowresError, match="matches no parameter"):
        select_parameters(model, ["*no_such_module*"])


@pytest.mark.parametrize("changes, expected", [
    ({"save_every_seconds": 1e-9}, [3, 4]),           # by wall-clock: the interval passed after every step
    ({"save_every_seconds": 1e9}, []),                # the interval never passed
    ({"save_every": 2, "save_every_seconds": 1e9}, [2, 4]),  # steps also trigger
    ({"save_every": 0, "save_every_seconds": 0}, []),  # both off: no checkpoints at all
])
def test_checkpoints_by_wall_clock_or_steps(tmp_path, changes, expected):
    def crash(report):
        if report.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(make_job(), settings(max_steps=10, keep_checkpoints=2, **changes), tmp_path, callbacks=[crash])
    assert checkpoint_steps(tmp_path) == expected


def test_checkpoints_are_on_by_default():
    assert LoopSettings().save_every_seconds > 0
