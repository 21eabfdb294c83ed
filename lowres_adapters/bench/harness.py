"""Run every setup of every workload in a child process, one after another, repeated; build the rows.

Each child trains one setup and writes its measurements; the parent takes the child's peak RSS
from ``os.wait4`` (``ru_maxrss``), so a setup's memory is its own. Rows give the median over
repeats of tokens/s and ms/step, the largest peak RSS, the mean held-out loss and
``speedup_vs_baseline`` = tokens/s / tokens/s of ``adapters+trainer`` on the same workload.
Repeat ``r`` runs with seed ``r`` (adapter initialisation, data order, masks; the base weights
never change), so the spread of the held-out loss shows what data order alone does.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from lowres_adapters.bench.setups import BASELINE, SETUPS, RunConfig
from lowres_adapters.bench.workloads import TINY_WORKLOADS, WORKLOADS
from lowres_adapters.errors import LowresError

MAIN_SETUPS = ("adapters+trainer", "peft+loop", "lowres")


@dataclass(frozen=True)
class BenchPlan:
    """What a bench run does.

    Attributes:
        workloads: Workloads to run (``mlm``, ``clm``).
        setups: Setups to run on each (the baseline always runs first).
        steps: Optimiser steps per setup (the same for all).
        batch_size: Rows per step, per workload.
        repeats: Times each setup runs.
        threads: Torch threads in each child.
        heldout_examples: Held-out verses scored after training.
        row_length: Longest example / packed row.
        lr: Constant learning rate.
        language: The pack whose verses train and are held out (the workload's data).
    """

    workloads: tuple[str, ...] = WORKLOADS
    setups: tuple[str, ...] = MAIN_SETUPS
    steps: int = 10
    batch_size: dict[str, int] = field(default_factory=lambda: {"mlm": 16, "clm": 8, "tiny-mlm": 4, "tiny-clm": 4})
    repeats: int = 2
    threads: int = 2
    heldout_examples: int = 128
    row_length: int = 128
    lr: float = 1e-3
    language: str = "nya"

    def __post_init__(self) -> None:
        unknown = [name for name in self.workloads if name not in WORKLOADS + TINY_WORKLOADS]
        unknown += [name for name in self.setups if name not in SETUPS]
        if unknown:
            raise LowresError(f"unknown workload or setup {', '.join(unknown)}; "
                              f"workloads: {', '.join(WORKLOADS)}; setups: {', '.join(SETUPS)}")
        if self.steps < 1 or self.repeats < 1 or self.threads < 1:
            raise LowresError("steps, repeats and threads must be at least 1")

    @classmethod
    def quick(cls, **overrides: Any) -> "BenchPlan":
        """Return the few-minutes plan: 4 steps of 8 rows, one repeat, 32 held-out verses."""
        values: dict[str, Any] = {"steps": 4, "batch_size": {"mlm": 8, "clm": 8, "tiny-mlm": 4, "tiny-clm": 4},
                                  "repeats": 1,
                                  "heldout_examples": 32}
        values.update(overrides)
        return cls(**values)


def run_child(config: Any, threads: int, module: str = "lowres_adapters.bench.child") -> dict[str, Any]:
    """Run one setup (a config dataclass) in a child process running ``module``; return its
    measurements with ``peak_rss_mb``."""
    with tempfile.TemporaryDirectory(prefix="lowres-bench-") as folder:
        output = Path(folder) / "result.json"
        environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                       "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
        command = [sys.executable, "-m", module, json.dumps(asdict(config)), str(output)]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = process.stderr.read() if process.stderr else b""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if output.exists():
            result = json.loads(output.read_text(encoding="utf-8"))
        else:
            lines = stderr.decode(errors="replace").strip().splitlines()
            result = {"error": f"child exited {process.returncode}: {lines[-1] if lines else 'no output'}"}
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # Linux reports KiB
    result["wall_s"] = wall
    return result


def run_bench(plan: BenchPlan, log: Callable[[str], None] = lambda line: None) -> list[dict[str, Any]]:
    """Run the plan and return one row per (workload, setup)."""
    rows = []
    setups = (BASELINE, *[name for name in plan.setups if name != BASELINE])
    for workload in plan.workloads:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
        for repeat in range(plan.repeats):
            for setup in setups:
                config = RunConfig(workload=workload, setup=setup, steps=plan.steps,
                                   batch_size=plan.batch_size[workload], row_length=plan.row_length, lr=plan.lr,
                                   seed=repeat, heldout_examples=plan.heldout_examples, language=plan.language)
                log(f"{workload} {setup} (run {repeat + 1}/{plan.repeats}) ...")
                result = run_child(config, plan.threads)
                runs[setup].append(result)
                log(_one_line(result))
        rows.extend(aggregate(workload, runs, plan))
    return rows


def _one_line(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"  error: {result['error']}"
    return (f"  {result['tokens_per_s']:.0f} tokens/s, {result['ms_per_step']:.0f} ms/step, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB, held-out loss {result['heldout_loss']:.4f}")


def aggregate(workload: str, runs: dict[str, list[dict[str, Any]]], plan: BenchPlan) -> list[dict[str, Any]]:
    """Return the rows of one workload from its runs (median rates, max RSS, mean loss)."""
    rows = []
    baseline_rate = None
    for setup, results in runs.items():
        good = [result for result in results if "error" not in result]
        if not good:
            rows.append({"workload": workload, "setup": setup, "error": results[0]["error"] if results else "not run"})
            continue
        rate = statistics.median(result["tokens_per_s"] for result in good)
        if setup == BASELINE:
            baseline_rate = rate
        first = good[0]
        trainable_bytes = 4 * first["trainable_parameters"]
        rows.append({
            "workload": workload, "setup": setup, "adapter": first["adapter"],
            "trainable_parameters": first["trainable_parameters"], "steps": first["steps"],
            "batch_rows": first.get("rows_per_step", plan.batch_size[workload]), "repeats": len(good),
            "tokens_per_step": round(statistics.median(r["tokens_per_step"] for r in good), 1),
            "real_token_share": round(statistics.median(r["tokens_per_step"] / r["slots_per_step"] for r in good), 3),
            "tokens_per_s": round(rate, 1),
            "tokens_per_s_range": [round(min(r["tokens_per_s"] for r in good), 1),
                                   round(max(r["tokens_per_s"] for r in good), 1)],
            "ms_per_step": round(statistics.median(r["ms_per_step"] for r in good), 1),
            "tokens_per_s_mean": round(statistics.fmean(r["tokens_per_s"] for r in good), 1),
            "tokens_per_s_std": _std([r["tokens_per_s"] for r in good], 1),
            "ms_per_real_token": round(statistics.fmean(r["ms_per_step"] / r["tokens_per_step"] for r in good), 2),
            "ms_per_real_token_std": _std([r["ms_per_step"] / r["tokens_per_step"] for r in good], 2),
            "bf16": bool(first.get("options", {}).get("bf16", False)),
            "tokens_per_cpu_s": round(statistics.median(r["tokens_per_cpu_s"] for r in good), 1),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in good), 1),
            "heldout_loss": round(statistics.fmean(r["heldout_loss"] for r in good), 4),
            "heldout_loss_std": round(statistics.stdev(r["heldout_loss"] for r in good), 4) if len(good) > 1 else None,
            "speedup_vs_baseline": None,
            "adapter_bytes": first["adapter_bytes"],
            "adapter_bytes_ratio": round(first["adapter_bytes"] / trainable_bytes, 4) if trainable_bytes else None,
            "scored_vocab": first["scored_vocab"],
            "step_gflop": round(statistics.median(r["step_gflop"] for r in good), 1),
            "achieved_gflops": round(statistics.median(r["achieved_gflops"] for r in good), 1),
            "tokenizer": first["tokenizer"], "threads": first["threads"],
        })
    baseline_cpu_rate = next((row["tokens_per_cpu_s"] for row in rows if row["setup"] == BASELINE
                              and "tokens_per_cpu_s" in row), None)
    for row in rows:
        if baseline_rate and "tokens_per_s" in row:
            row["speedup_vs_baseline"] = round(row["tokens_per_s"] / baseline_rate, 2)
            row["cpu_speedup_vs_baseline"] = round(row["tokens_per_cpu_s"] / baseline_cpu_rate, 2)
    return rows


def _std(values: list[float], digits: int) -> float | None:
    """Return the sample standard deviation (None for fewer than two values)."""
    return round(statistics.stdev(values), digits) if len(values) > 1 else None
