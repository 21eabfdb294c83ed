"""The bench harness: child runs, peak RSS, aggregation and the table (on tiny stand-in workloads)."""

from __future__ import annotations

import pytest

from lowres_adapters.bench.harness import BenchPlan, aggregate, run_bench
from lowres_adapters.bench.report import markdown_table
from lowres_adapters.bench.setups import RunConfig, StepClock, run_setup
from lowres_adapters.bench.workloads import load_workload
from lowres_adapters.errors import LowresError


def test_every_setup_runs_in_a_child_and_reports_its_figures():
    plan = BenchPlan(workloads=("tiny-mlm",), setups=("lowres",), steps=3, repeats=1, threads=1,
                     heldout_examples=4, row_length=128)
    rows = run_bench(plan)
    assert [row["setup"] for row in rows] == ["adapters+trainer", "lowres"]  # the baseline always runs
    for row in rows:
        assert "error" not in row, row
        assert row["tokens_per_s"] > 0 and row["ms_per_step"] > 0 and row["peak_rss_mb"] > 50
        assert row["steps"] == 3 and row["heldout_loss"] > 0
    baseline, lowres = rows
    # Packed rows are nearly all real tokens; verses padded to the longest are not.
    assert lowres["real_token_share"] > baseline["real_token_share"]
    assert lowres["batch_rows"] < baseline["batch_rows"]  # as many real tokens in fewer, fuller rows
    assert lowres["scored_vocab"] < baseline["scored_vocab"]
    # The saved adapter is its trainable tensors and a small header, nothing else.
    assert 0 <= lowres["adapter_bytes"] - 4 * lowres["trainable_parameters"] < 16_384
    assert "| tiny-mlm | lowres |" in markdown_table(rows)


def test_peft_setup_trains_lora_with_its_own_loss():
    data = load_workload("tiny-clm", heldout_examples=4, max_length=128)
    result = run_setup(RunConfig(workload="tiny-clm", setup="peft+loop", steps=2, batch_size=2), data)
    assert result["adapter"].startswith("lora r=16") and result["steps"] == 2
    assert result["scored_per_step"] == result["slots_per_step"]  # logits at every slot
    assert 0 <= result["adapter_bytes"] - 4 * result["trainable_parameters"] < 16_384


def run_record(rate: float, loss: float, rss: float, cpu_rate: float) -> dict:
    """One child's result, as ``run_setup`` returns it."""
    return {"adapter": "lora r=8", "trainable_parameters": 1000, "steps": 4, "rows_per_step": 8,
            "tokens_per_step": 400.0, "slots_per_step": 500.0, "tokens_per_s": rate, "ms_per_step": 4e5 / rate,
            "tokens_per_cpu_s": cpu_rate, "peak_rss_mb": rss, "heldout_loss": loss, "adapter_bytes": 4100,
            "scored_vocab": 300, "step_gflop": 2.0, "achieved_gflops": 1.0, "tokenizer": "t", "threads": 1}


def test_aggregate_takes_medians_of_repeats_and_divides_by_the_baselines_median():
    runs = {
        "adapters+trainer": [run_record(50, 4.0, 900, 30), run_record(100, 4.2, 950, 60), run_record(40, 4.4, 920, 20)],
        "lowres": [run_record(100, 3.0, 700, 90), run_record(300, 3.1, 720, 120), run_record(200, 3.2, 710, 100),
                   {"error": "one child crashed"}],
    }
    baseline, lowres = aggregate("mlm", runs, BenchPlan(steps=4, repeats=4))
    assert (baseline["tokens_per_s"], lowres["tokens_per_s"]) == (50.0, 200.0)  # medians, not means or maxima
    assert lowres["tokens_per_s_range"] == [100.0, 300.0] and lowres["repeats"] == 3
    assert (baseline["speedup_vs_baseline"], lowres["speedup_vs_baseline"]) == (1.0, 4.0)
    assert lowres["cpu_speedup_vs_baseline"] == 3.33  # 100 / 30
    assert lowres["ms_per_step"] == 2000.0 and lowres["peak_rss_mb"] == 720.0  # median step time, largest RSS
    assert lowres["heldout_loss"] == 3.1 and lowres["heldout_loss_std"] == 0.1
    assert lowres["real_token_share"] == 0.8 and lowres["adapter_bytes_ratio"] == 1.025


def test_a_failing_setup_becomes_an_error_row():
    rows = aggregate("mlm", {"adapters+trainer": [{"error": "boom"}]}, BenchPlan(steps=1))
    assert rows == [{"workload": "mlm", "setup": "adapters+trainer", "error": "boom"}]
    assert "error: boom" in markdown_table(rows)


def test_unknown_names_are_one_line_errors():
    with pytest.raises(LowresError, match="unknown workload or setup"):
        BenchPlan(setups=("lowres:turbo",))
    with pytest.raises(LowresError):
        BenchPlan(steps=0)


def test_step_clock_leaves_out_the_first_step():
    clock = StepClock(scores_every_slot=False, started=0.0)
    for end, tokens in ((10.0, 100), (11.0, 200), (12.0, 200)):
        clock.pending = [tokens, 256, 256 * 128, 30]
        clock.ends.append(end)
        clock.tokens.append(tokens)
        clock.work.append((256, 256 * 128, 30))
    summary = clock.summary()
    assert summary["tokens_per_s"] == pytest.approx(200.0)
    assert summary["ms_per_step"] == pytest.approx(1000.0)
    assert summary["first_step_ms"] == pytest.approx(10_000.0)
    assert summary["attended_per_slot"] == pytest.approx(128.0)
