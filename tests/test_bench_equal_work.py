"""The equal-work view of the step bench: mean ± std over repeats, cost per real token, share of peak."""

from __future__ import annotations

import pytest

from lowres_adapters.bench.harness import BenchPlan, aggregate
from lowres_adapters.bench.report import add_peak_fraction, equal_work_table


def record(rate: float, tokens_per_step: float, gflops: float, bf16: bool | None = None) -> dict:
    """One child's result, as ``run_setup`` returns it."""
    result = {"adapter": "lora", "trainable_parameters": 1000, "steps": 4, "rows_per_step": 4,
              "tokens_per_step": tokens_per_step, "slots_per_step": 512.0, "tokens_per_s": rate,
              "ms_per_step": 1000.0 * tokens_per_step / rate, "tokens_per_cpu_s": rate / 2, "peak_rss_mb": 900.0,
              "heldout_loss": 3.0, "adapter_bytes": 4100, "scored_vocab": 300, "step_gflop": 2.0,
              "achieved_gflops": gflops, "tokenizer": "t", "threads": 1}
    if bf16 is not None:
        result["options"] = {"bf16": bf16}
    return result


def test_rows_carry_mean_and_std_of_the_rate_and_the_cost_per_real_token():
    runs = {"adapters+trainer": [record(100, 400, 50), record(120, 400, 60), record(110, 400, 55)],
            "lowres": [record(200, 500, 100, bf16=True), record(250, 500, 120, bf16=True)]}
    baseline, lowres = aggregate("clm", runs, BenchPlan(steps=4, repeats=3))
    assert baseline["tokens_per_s_mean"] == 110.0 and baseline["tokens_per_s_std"] == 10.0
    # ms per real token divides each run's step time by its own real tokens: 5 ms and 4 ms
    assert lowres["ms_per_real_token"] == 4.5 and lowres["ms_per_real_token_std"] == pytest.approx(0.71)
    assert lowres["bf16"] and not baseline["bf16"]
    single = aggregate("clm", {"adapters+trainer": [record(100, 400, 50)]}, BenchPlan(steps=4, repeats=1))[0]
    assert single["tokens_per_s_std"] is None  # no spread from one run


def test_peak_fraction_uses_the_precision_the_setup_computed_in():
    rows = [{"setup": "a", "achieved_gflops": 100.0, "bf16": False},
            {"setup": "c", "achieved_gflops": 100.0, "bf16": True}, {"setup": "x", "error": "crashed"}]
    add_peak_fraction(rows, {"matmul_fp32_gflops": 200.0, "matmul_bf16_gflops": 400.0})
    assert rows[0]["peak_fraction"] == 0.5 and rows[1]["peak_fraction"] == 0.25
    assert "peak_fraction" not in rows[2]


def test_equal_work_table_shows_each_figure_with_its_spread():
    runs = {"adapters+trainer": [record(100, 400, 50), record(120, 400, 60)]}
    rows = aggregate("clm", runs, BenchPlan(steps=4, repeats=2))
    add_peak_fraction(rows, {"matmul_fp32_gflops": 110.0, "matmul_bf16_gflops": 400.0})
    table = equal_work_table(rows)
    assert "| clm | adapters+trainer | 400 | 110.0 | 14.1 | 9.17 | 1.18 | 1.00x | 50% | 2 |" in table
