"""Scoring and generation side by side on a :class:`WorkPool` (one single-threaded worker per core) give the
figures one thread gives: the same batches, results in order, the model's attention switch kept while any
phase still runs."""

from __future__ import annotations

import threading

import pytest
import torch

from lowres_adapters.evaluation import fast_attention
from lowres_adapters.evaluation.fast_attention import grouped_query_attention
from lowres_adapters.evaluation.generation import GenerationSettings, generate_answers
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.evaluation.translation import plain_prompt, translation_inputs
from lowres_adapters.evaluation.work_pool import Piece, WorkPool, run_side_by_side
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model

SOURCES = ["And the earth was without form, and void, in the beginning of all things.", "God is light.",
           "In the beginning God created the heaven.", "Light.", "And God said, Let there be light.",
           "The waters were gathered together unto one place."]
WAIT = 60  # seconds a worker waits for the other before the test fails (a safety net, not a timing)


@pytest.fixture(scope="module")
def llama():
    model, tokenizer = tiny_model("llama", initializer_range=0.3)  # outputs that depend on the prompt
    model.generation_config.eos_token_id = None
    return model, tokenizer


def test_pieces_run_on_two_single_threaded_workers_at_once_and_come_back_in_order():
    both_running = threading.Barrier(2, timeout=WAIT)
    seen = []

    def piece(value):
        def run():
            if value < 2:
                both_running.wait()  # passes only when the first two pieces run at the same time
            seen.append((threading.current_thread().name, torch.get_num_threads(), torch.is_grad_enabled()))
            return value * 10
        return Piece(cost=10 - value, run=run)

    before = torch.get_num_threads()
    with WorkPool(2) as pool:
        assert pool.parallel
        assert pool.run([piece(value) for value in range(5)]) == [0, 10, 20, 30, 40]
    assert torch.get_num_threads() == before
    assert len({name for name, _, _ in seen}) == 2 and all(name.startswith("lowres-worker") for name, _, _ in seen)
    assert all(threads == 1 and not grad for _, threads, grad in seen)


def test_pending_pieces_are_taken_costliest_first():
    started, release, order = threading.Event(), threading.Event(), []
    with WorkPool(2) as pool:
        def blocker():
            started.set()
            release.wait(WAIT)
        blocking = threading.Thread(target=pool.run, args=([Piece(100, blocker), Piece(100, blocker)],))
        blocking.start()
        started.wait(WAIT)
        queued = threading.Thread(target=pool.run, args=([Piece(cost, lambda cost=cost: order.append(cost))
                                                          for cost in (1, 5, 3)],))
        queued.start()
        while len(pool._queue) < 3:  # all three pending behind the blockers
            threading.Event().wait(0.01)
        release.set()
        blocking.join(WAIT)
        queued.join(WAIT)
    assert set(order[:2]) == {5, 3} and order[2] == 1


def test_a_failing_piece_raises_in_the_caller_and_the_pool_still_works():
    def fail():
        raise ValueError("broken piece")

    with WorkPool(2) as pool:
        with pytest.raises(ValueError, match="broken piece"):
            pool.run([Piece(1, lambda: 1), Piece(2, fail)])
        assert pool.run([Piece(1, lambda: "still")]) == ["still"]


def test_one_worker_runs_in_the_calling_thread():
    with WorkPool(1) as pool:
        assert not pool.parallel
        assert pool.run([Piece(1, threading.current_thread)]) == [threading.current_thread()]


def test_scoring_on_the_pool_gives_the_figures_of_one_thread(llama):
    model, tokenizer = llama
    alone = score_texts(model, tokenizer, TINY_CORPUS, batch_size=2)
    with WorkPool(2) as pool:
        pooled = score_texts(model, tokenizer, TINY_CORPUS, batch_size=2, pool=pool)
    assert pooled.tokens == alone.tokens and pooled.chars == alone.chars
    assert pooled.nll_nats == pytest.approx(alone.nll_nats, rel=1e-9)


def test_generation_on_the_pool_gives_the_answers_of_one_thread(llama):
    model, tokenizer = llama
    settings = GenerationSettings(num_beams=2, max_new_tokens=12, length_ratio=1.0)
    prompt = plain_prompt("English", "Chichewa")
    inputs = translation_inputs(tokenizer, SOURCES, prompt, settings)
    alone = generate_answers(model, tokenizer, inputs.prompts, inputs.budgets, settings=settings, batch_size=2,
                             stop_at_newline=False)
    with WorkPool(2) as pool:
        pooled = generate_answers(model, tokenizer, inputs.prompts, inputs.budgets, settings=settings, batch_size=2,
                                  stop_at_newline=False, pool=pool)
    assert pooled == alone and len(set(alone)) > 2  # each answer back at its own prompt


def test_phases_side_by_side_return_in_order_and_raise_their_errors():
    with WorkPool(2) as pool:
        assert run_side_by_side(pool, lambda: "scores", lambda: "hypotheses") == ["scores", "hypotheses"]

        def fail():
            raise RuntimeError("phase failed")
        with pytest.raises(RuntimeError, match="phase failed"):
            run_side_by_side(pool, lambda: 1, fail)


def test_overlapping_attention_blocks_keep_the_switch_until_the_last_one_closes(llama):
    model, _ = llama
    assert fast_attention.applies_to(model)
    scoring, generating = grouped_query_attention(model), grouped_query_attention(model)
    assert scoring.__enter__() and generating.__enter__()
    scoring.__exit__(None, None, None)  # the scoring phase ends while generation still runs
    assert model.config._attn_implementation == fast_attention.GQA_SDPA
    generating.__exit__(None, None, None)
    assert model.config._attn_implementation == "sdpa"
