"""Time to quality (``lowres bench --workload ttq``): held-out bits/char against training seconds.

Each setup trains the embedded SmolLM2-135M on the same language's Old Testament verses in a child
process and is scored on the first held-out New Testament verses (``score_texts``: the bits/char
``lowres adapt`` reports) whenever its training clock crosses a wall-clock budget (30, 60, 120,
180 s by default) and whenever its real-token count crosses what the baseline had seen at those
budgets (the equal-tokens view). Scoring time is taken off the training clock. The setups:

- ``adapters+trainer`` (the baseline) and ``peft+loop``: LoRA r=16, alpha 32 on q/v, AdamW at a
  constant 1e-3, batches of 8 verses padded to the longest (as in the step-speed bench);
- ``lowres``: this library's default path, i.e. what ``make demo`` runs: the ``language`` recipe's
  decoder defaults (its LoRA in the top half of the blocks, learning rate, schedule, packed batch,
  row length, fast-path switches), or what the plan names. Its learning-rate schedule
  spans the recipe's ``max_steps``; when that ends before the last budget the adapter is done and
  keeps its figure, as a user's run would.

Every row: ``workload`` (``ttq``), ``setup``, ``view`` (``time`` or ``tokens``), ``seconds``,
``tokens``, ``steps``, ``bits_per_char`` and, per setup, ``time_to_baseline_s`` /
``time_to_baseline_ratio``: the training seconds the setup needs to reach the baseline's figure at
the last budget (linear between scored points, from the base model's figure at 0 s), divided by
the baseline's own training seconds at that point.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lowres_adapters.errors import LowresError

TTQ_SETUPS = ("adapters+trainer", "peft+loop", "lowres")
BASELINE_LR = 1e-3


@dataclass(frozen=True)
class TtqConfig:
    """One child run of the time-to-quality workload.

    Attributes:
        setup: One of :data:`TTQ_SETUPS` or a ``lowres:`` variant (:data:`~lowres_adapters.bench.setups.LOWRES_VARIANTS`).
        budgets: Training seconds at which the adapter is scored (ascending).
        token_marks: Real training tokens at which it is scored too (the baseline's, at each budget).
        language: Pack whose ``train`` verses train and whose first ``test`` verses are scored.
        heldout_examples: Held-out verses scored.
        seed: Adapter initialisation and data order.
        adapter: Adapter type of the ``lowres`` setup ("" = the recipe's default).
        adapter_config: Fields of that adapter's config ({} = its defaults).
        loop: Loop settings over the recipe's defaults (e.g. ``{"lr": 5e-3}``).
        score_base: Also score the base model (the 0-second point).
        model: A model id for tests ("" = the embedded default).
    """

    setup: str
    budgets: tuple[float, ...]
    token_marks: tuple[int, ...] = ()
    language: str = "nya"
    heldout_examples: int = 300
    seed: int = 0
    adapter: str = ""
    adapter_config: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)
    score_base: bool = False
    model: str = ""


class BudgetSpent(Exception):
    """Raised from a step callback to end training once the last budget is spent."""


class BudgetClock:
    """The training clock of one run: scores the model at time budgets and token marks.

    ``after_step(tokens, steps)`` is called after every optimiser step; training ends once the last
    budget is spent and every token mark is reached (or twice the last budget has passed). The time spent scoring is
    subtracted from the clock, so ``seconds`` is training time only. ``time_fn`` is injectable so
    that tests need no real time.
    """

    def __init__(self, budgets: Sequence[float], token_marks: Sequence[int], score: Callable[[], float],
                 time_fn: Callable[[], float] = time.perf_counter) -> None:
        if not budgets or list(budgets) != sorted(budgets):
            raise LowresError(f"ttq budgets must be ascending seconds, got {list(budgets)}")
        self.budgets, self.marks, self.last_budget = list(budgets), sorted(token_marks), float(budgets[-1])
        self.score, self.time_fn = score, time_fn
        self.points: list[dict[str, Any]] = []
        self.scoring_seconds = 0.0
        self.started = time_fn()

    def start(self) -> None:
        """Restart the clock (call it when training starts, after the set-up)."""
        self.started, self.scoring_seconds = self.time_fn(), 0.0

    def seconds(self) -> float:
        """Return the training seconds so far (scoring excluded)."""
        return self.time_fn() - self.started - self.scoring_seconds

    def _record(self, view: str, mark: float, seconds: float, tokens: int, steps: int) -> None:
        before = self.time_fn()
        bits = self.score()
        self.scoring_seconds += self.time_fn() - before
        self.points.append({"view": view, "mark": mark, "seconds": round(seconds, 2), "tokens": int(tokens),
                            "steps": steps, "bits_per_char": round(bits, 4)})

    def after_step(self, tokens: int, steps: int) -> bool:
        """Score at every budget/mark crossed by this step; return True when the last budget is spent."""
        seconds = self.seconds()
        while self.budgets and seconds >= self.budgets[0]:
            self._record("time", self.budgets.pop(0), seconds, tokens, steps)
        while self.marks and tokens >= self.marks[0]:
            self._record("tokens", self.marks.pop(0), seconds, tokens, steps)
        # Past the last budget, keep going (up to twice it) until the baseline's token counts are reached.
        return not self.budgets and (not self.marks or seconds >= 2 * self.last_budget)

    def finish(self, tokens: int, steps: int) -> list[dict[str, Any]]:
        """Close the run when training ended before the last budget: the remaining budgets get the
        final adapter's figure (scored once); token marks not reached stay unscored."""
        if self.budgets:
            seconds = self.seconds()
            self._record("time", self.budgets[0], seconds, tokens, steps)
            final = self.points[-1]
            for budget in self.budgets[1:]:
                self.points.append({**final, "mark": budget})
            self.budgets = []
        return self.points


def time_to_reach(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """Return the first time a piecewise-linear ``(seconds, bits/char)`` curve reaches ``target``.

    Points are sorted by seconds; the curve starts at the first point. None when never reached.
    """
    ordered = sorted(points)
    for index, (seconds, bits) in enumerate(ordered):
        if bits <= target:
            if index == 0:
                return seconds
            previous_seconds, previous_bits = ordered[index - 1]
            share = (previous_bits - target) / (previous_bits - bits)
            return previous_seconds + share * (seconds - previous_seconds)
    return None


def summarise(results: dict[str, dict[str, Any]], baseline: str = "adapters+trainer") -> list[dict[str, Any]]:
    """Return the JSON rows (one per scored point) with each setup's time to the baseline's figure."""
    base = results.get(baseline, {})
    base_points = [p for p in base.get("points", []) if p["view"] == "time"]
    if not base_points:
        raise LowresError(f"ttq: the baseline {baseline} produced no scored point")
    last = max(base_points, key=lambda p: p["mark"])
    target, budget = last["bits_per_char"], max(float(last["seconds"]), 1e-9)
    start = base.get("base_bits_per_char")
    rows = []
    for setup, result in results.items():
        curve = [(0.0, start)] if start is not None else []
        curve += [(float(p["seconds"]), p["bits_per_char"]) for p in result.get("points", []) if p["view"] == "time"]
        reached = time_to_reach(curve, target)
        extra = {"time_to_baseline_s": None if reached is None else round(reached, 1),
                 "time_to_baseline_ratio": None if reached is None else round(reached / budget, 3),
                 "baseline_bits_per_char": target, "baseline_budget_s": budget, "base_bits_per_char": start}
        if "error" in result:
            rows.append({"workload": "ttq", "setup": setup, "error": result["error"], **extra})
            continue
        points = list(result["points"])
        if setup == baseline:  # the token marks are the baseline's own counts at its budgets
            points += [{**p, "view": "tokens", "mark": p["tokens"]} for p in points if p["view"] == "time"]
        for point in points:
            rows.append({"workload": "ttq", "setup": setup, **point, "adapter": result.get("adapter"),
                         "threads": result.get("threads"), **extra})
    return rows


def markdown(rows: Sequence[dict[str, Any]], view: str = "time") -> str:
    """Return one table: a line per setup, a column per budget (or token mark), time to the baseline."""
    marks = sorted({row["mark"] for row in rows if row.get("view") == view})
    unit = "s" if view == "time" else "tokens"
    header = ["setup", "adapter", *[f"{m:,.0f} {unit}" for m in marks], "time to baseline's figure", "ratio"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(marks) + 2)]
    for setup in dict.fromkeys(row["setup"] for row in rows):
        mine = [row for row in rows if row["setup"] == setup]
        if "error" in mine[0]:
            lines.append(f"| {setup} | error: {mine[0]['error']} |" + " |" * (len(marks) + 2))
            continue
        by_mark = {row["mark"]: row for row in mine if row.get("view") == view}
        cells = []
        for mark in marks:
            row = by_mark.get(mark)
            cells.append("–" if row is None else f"{row['bits_per_char']:.3f} ({row['steps']} st, "
                         + (f"{row['tokens']:,} tok)" if view == "time" else f"{row['seconds']:.0f} s)"))
        reached, ratio = mine[0]["time_to_baseline_s"], mine[0]["time_to_baseline_ratio"]
        lines.append(f"| {setup} | {mine[0].get('adapter', '')} | " + " | ".join(cells) + " | "
                     + ("not reached" if reached is None else f"{reached:.0f} s") + " | "
                     + ("–" if ratio is None else f"{ratio:.2f}") + " |")
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Draw bits/char against training seconds, one line per setup; return the PNG's path."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import matplotlib

    matplotlib.use("Agg")
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for setup in dict.fromkeys(row["setup"] for row in rows if "error" not in row):
        points = sorted((row["seconds"], row["bits_per_char"]) for row in rows
                        if row["setup"] == setup and row.get("view") == "time")
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=setup)
    target = next((row["baseline_bits_per_char"] for row in rows), None)
    if target is not None:
        axes.axhline(target, color="grey", linestyle=":", linewidth=1, label="baseline's last figure")
    axes.set_xlabel("training seconds (scoring excluded)")
    axes.set_ylabel("held-out bits/char")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


@dataclass(frozen=True)
class TtqPlan:
    """What ``lowres bench --workload ttq`` does.

    Attributes:
        budgets: Training seconds at which every setup is scored.
        setups: Setups, the baseline (``adapters+trainer``) first.
        language: Pack whose verses train and are scored.
        heldout_examples: Held-out verses scored at each point.
        threads: Torch threads of each child.
        seed: Adapter initialisation and data order.
        adapter: Adapter type of the ``lowres`` setup ("" = the recipe's default, as ``make demo``).
        adapter_config: Its config fields over the recipe's defaults.
        loop: Loop settings over the recipe's defaults.
    """

    budgets: tuple[float, ...] = (30.0, 60.0, 120.0, 180.0)
    setups: tuple[str, ...] = TTQ_SETUPS
    language: str = "nya"
    heldout_examples: int = 300
    threads: int = 2
    seed: int = 0
    adapter: str = ""
    adapter_config: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides: Any) -> "TtqPlan":
        """Return the plan that fits 20 minutes on 2 cores: budgets 30, 60, 90 s and 100 verses."""
        return cls(**{"budgets": (30.0, 60.0, 90.0), "heldout_examples": 100, **overrides})


def run_ttq(plan: TtqPlan, log: Callable[[str], None] = lambda line: None, model: str = "") -> list[dict[str, Any]]:
    """Run the baseline, then the other setups at its token marks; return the summarised rows."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.bench.harness import run_child

    results: dict[str, dict[str, Any]] = {}
    marks: tuple[int, ...] = ()
    for setup in ("adapters+trainer", *[name for name in plan.setups if name != "adapters+trainer"]):
        config = TtqConfig(setup=setup, budgets=plan.budgets, token_marks=marks, language=plan.language,
                           heldout_examples=plan.heldout_examples, seed=plan.seed, adapter=plan.adapter,
                           adapter_config=dict(plan.adapter_config), loop=dict(plan.loop), score_base=setup == "adapters+trainer",
                           model=model)
        log(f"ttq {setup} (budgets {', '.join(f'{b:g}' for b in plan.budgets)} s) ...")
        result = run_child(config, plan.threads, module="lowres_adapters.bench.ttq")
        results[setup] = result
        if "error" in result:
            log(f"  error: {result['error']}")
            continue
        for point in result["points"]:
            log(f"  {point['view']} {point['mark']:g}: {point['bits_per_char']:.3f} bits/char after "
                f"{point['seconds']:.0f} s, {point['steps']} steps, {point['tokens']:,} tokens")
        if setup == "adapters+trainer":
            marks = tuple(p["tokens"] for p in result["points"] if p["view"] == "time")
    return summarise(results)


def run_ttq_child(config_json: str, output: Path) -> int:
    """Child entry point: run one setup and write its points (or its error) as JSON to ``output``."""
    # lazy: the setups import torch, adapters, peft and transformers' Trainer
    from lowres_adapters.bench.child import run_and_write
    from lowres_adapters.bench.ttq_setups import run_ttq_setup

    config = TtqConfig(**{**json.loads(config_json)})
    config = dataclasses.replace(config, budgets=tuple(config.budgets), token_marks=tuple(config.token_marks))
    return run_and_write(lambda: run_ttq_setup(config), output)


if __name__ == "__main__":
    sys.exit(run_ttq_child(sys.argv[1], Path(sys.argv[2])))
