"""The time-to-quality bench: its clock, the time to the baseline's figure, the table, and a tiny run."""

from __future__ import annotations

import json

import pytest

from lowres_adapters.bench.ttq import (
    BudgetClock,
    TtqPlan,
    markdown,
    plot,
    run_ttq,
    summarise,
    time_to_reach,
)
from lowres_adapters.bench.ttq_setups import describe_adapter
from lowres_adapters.errors import LowresError


class FakeTime:
    """A clock that moves only when told to (scoring takes ``score_cost`` seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_clock_scores_at_each_budget_and_token_mark_and_leaves_scoring_time_out():
    now = FakeTime()
    scores = iter([3.5, 3.2, 3.0, 2.9])

    def score() -> float:
        now.now += 50.0  # scoring is slow; it must not count as training time
        return next(scores)

    clock = BudgetClock([10.0, 20.0], [500], score, time_fn=now)
    now.now += 6.0
    assert not clock.after_step(tokens=300, steps=1)
    assert clock.points == []
    now.now += 6.0  # 12 s of training: the 10 s budget is crossed
    assert not clock.after_step(tokens=600, steps=2)  # ... and the 500-token mark
    assert [(p["view"], p["mark"], p["seconds"], p["tokens"]) for p in clock.points] == [
        ("time", 10.0, 12.0, 600), ("tokens", 500, 12.0, 600)]
    assert clock.seconds() == pytest.approx(12.0)  # the 100 s of scoring are not training
    now.now += 9.0
    assert clock.after_step(tokens=900, steps=3)  # 21 s: the last budget is spent
    assert clock.points[-1]["seconds"] == 21.0 and clock.points[-1]["bits_per_char"] == 3.0


def test_past_the_last_budget_training_goes_on_to_the_baselines_token_count_but_not_forever():
    now = FakeTime()
    clock = BudgetClock([10.0], [1000], lambda: 3.0, time_fn=now)
    now.now += 12.0
    assert not clock.after_step(tokens=600, steps=1)  # budget spent, 1000 tokens not yet seen
    now.now += 3.0
    assert clock.after_step(tokens=1000, steps=2)
    assert [p["view"] for p in clock.points] == ["time", "tokens"]
    slow = BudgetClock([10.0], [1000], lambda: 3.0, time_fn=now)
    now.now += 12.0
    assert not slow.after_step(tokens=300, steps=1)
    now.now += 8.0  # twice the last budget: stop without the token point
    assert slow.after_step(tokens=500, steps=2)
    assert [p["view"] for p in slow.points] == ["time"]


def test_a_run_that_ends_early_keeps_its_final_figure_for_the_remaining_budgets():
    now = FakeTime()
    clock = BudgetClock([30.0, 60.0, 90.0], [10_000], lambda: 2.5, time_fn=now)
    now.now += 40.0
    clock.after_step(tokens=4000, steps=40)
    points = clock.finish(tokens=4000, steps=40)
    assert [(p["view"], p["mark"], p["steps"]) for p in points] == [("time", 30.0, 40), ("time", 60.0, 40),
                                                                    ("time", 90.0, 40)]
    assert all(p["view"] != "tokens" for p in points)  # a token mark never reached is not invented


def test_budgets_must_ascend():
    with pytest.raises(LowresError, match="ascending"):
        BudgetClock([60.0, 30.0], [], lambda: 1.0)


def test_time_to_reach_interpolates_between_scored_points():
    curve = [(0.0, 4.0), (30.0, 3.0), (60.0, 2.5)]
    assert time_to_reach(curve, 3.0) == 30.0
    assert time_to_reach(curve, 2.75) == pytest.approx(45.0)
    assert time_to_reach(curve, 2.0) is None
    assert time_to_reach([(60.0, 2.5), (0.0, 4.0)], 3.25) == pytest.approx(30.0)  # order does not matter


def points(*figures):
    return [{"view": "time", "mark": float(m), "seconds": float(m), "tokens": 100 * m, "steps": m // 10,
             "bits_per_char": b} for m, b in figures]


def test_summary_gives_each_setup_its_time_to_the_baselines_last_figure():
    results = {
        "adapters+trainer": {"adapter": "a", "points": points((30, 3.6), (60, 3.2)), "base_bits_per_char": 4.0},
        "lowres": {"adapter": "c", "points": points((30, 3.0), (60, 2.6))},
        "peft+loop": {"adapter": "b", "points": points((30, 3.8), (60, 3.5))},
    }
    rows = summarise(results)
    by_setup = {row["setup"]: row for row in rows}
    assert by_setup["adapters+trainer"]["time_to_baseline_ratio"] == 1.0
    # lowres: 4.0 at 0 s -> 3.0 at 30 s; 3.2 is reached at 24 s, 0.4 of the baseline's 60 s
    assert by_setup["lowres"]["time_to_baseline_s"] == 24.0 and by_setup["lowres"]["time_to_baseline_ratio"] == 0.4
    assert by_setup["peft+loop"]["time_to_baseline_s"] is None
    assert {"workload", "setup", "seconds", "bits_per_char", "time_to_baseline_ratio"} <= set(rows[0])
    table = markdown(rows)
    assert "| lowres | c | 3.000 (3 st, 3,000 tok) | 2.600 (6 st, 6,000 tok) | 24 s | 0.40 |" in table
    assert "not reached" in table
    # Equal tokens: the baseline's own points sit at its token counts; the others were scored there.
    tokens_view = markdown(rows, "tokens")
    assert "| adapters+trainer | a | 3.600 (3 st, 30 s) | 3.200 (6 st, 60 s) |" in tokens_view


def test_summary_refuses_a_baseline_without_points():
    with pytest.raises(LowresError, match="baseline"):
        summarise({"adapters+trainer": {"error": "crashed"}, "lowres": {"points": points((30, 3.0))}})


def test_plot_writes_a_png(tmp_path):
    rows = summarise({"adapters+trainer": {"points": points((30, 3.6), (60, 3.2))},
                      "lowres": {"points": points((30, 3.0), (60, 2.6))}})
    path = plot(rows, tmp_path / "sub" / "ttq.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_setup_runs_in_a_child_on_a_tiny_model():
    plan = TtqPlan(budgets=(0.0,), heldout_examples=3, threads=1)
    rows = run_ttq(plan, model="tiny")
    assert not [row for row in rows if "error" in row]
    assert [row["setup"] for row in rows if row["view"] == "time"] == ["adapters+trainer", "peft+loop", "lowres"]
    for row in rows:
        assert "error" not in row, row
        assert row["bits_per_char"] > 0 and row["steps"] >= 1 and row["tokens"] > 0
    first = {row["setup"]: row for row in rows if row["view"] == "time"}
    # One step each, the same seeded verse order: the Trainer's count must not include the batch
    # its loader collated ahead.
    assert first["adapters+trainer"]["tokens"] == first["peft+loop"]["tokens"]
    lowres = next(row for row in rows if row["setup"] == "lowres" and row["view"] == "time")
    assert lowres["adapter"].endswith("(lowres)")
    # The baseline's real-token count is the others' token mark: scored once they had seen as many.
    baseline_tokens = next(row["tokens"] for row in rows if row["setup"] == "adapters+trainer")
    for row in rows:
        if row["view"] == "tokens":  # the baseline's own row sits exactly on its mark
            assert row["tokens"] >= baseline_tokens == row["mark"]
            assert row["setup"] != "adapters+trainer" or row["tokens"] == row["mark"]
    json.dumps(rows)


def test_adapter_labels_are_short():
    label = describe_adapter("lora", {"r": 16, "attn_matrices": ["q", "k", "v"], "output_lora": True,
                                      "intermediate_lora": False})
    assert label == "lora r=16 attn_matrices=qkv +output_lora"


def test_a_lowres_variant_runs_the_default_path_with_its_loop_switch(monkeypatch):
    """`--workload ttq --setup lowres:fp32` must train the default path with bf16 off (not plain lowres)."""
    import lowres_adapters.bench.ttq_setups as ttq_setups
    from lowres_adapters.bench.ttq import TtqConfig

    seen = {}

    def fake_lowres(config, data):
        seen["loop"] = dict(config.loop)
        return "lora r=16 (lowres)", []

    monkeypatch.setattr(ttq_setups, "_lowres", fake_lowres)
    monkeypatch.setattr(ttq_setups, "TtqData", lambda config: None)
    config = TtqConfig(setup="lowres:fp32", budgets=(1.0,), token_marks=(), language="nya", heldout_examples=1,
                       seed=0, adapter="", adapter_config={}, loop={"lr": 1e-3}, score_base=False, model="tiny")
    result = ttq_setups.run_ttq_setup(config)
    assert seen["loop"] == {"bf16": False, "lr": 1e-3}
    assert result["setup"] == "lowres:fp32" and result["adapter"].endswith("(lowres:fp32)")


def test_bench_refuses_an_unknown_ttq_setup_in_one_line(capsys):
    import pytest

    from lowres_adapters.cli import main

    with pytest.raises(SystemExit) as done:
        main(["bench", "--workload", "ttq", "--quick", "--setup", "lowres:fast"])
    err = capsys.readouterr().err
    assert done.value.code == 1 and len(err.splitlines()) == 1
    assert "'lowres:fast' is not a ttq setup" in err and "lowres:fp32" in err
