"""Sweep the ``language`` recipe's decoder defaults for ``make demo`` (issue 19).

Each named configuration adapts the embedded SmolLM2-135M to Chichewa (``nya``: Old Testament to
train) with ``lowres_adapters.adapt`` and scores the first N held-out New Testament verses in
bits/char. Decisions are taken by optimiser steps (reproducible); a step budget stands for a
wall-clock budget through the seconds per step measured on 2 threads (docs/training.md).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_sweep.py --list
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_sweep.py lora_all_r16 seqbn_lr3e3 --eval-examples 100
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_sweep.py lora_all_r16 --seeds 0,1,2 --eval-examples 300
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_sweep.py --cost lora_all_r16 lora_top15_r16_b4
    .venv/bin/python benchmarks/demo_sweep.py --report        # results/demo_sweep.md from the .jsonl

Every run appends one JSON line to ``results/demo_sweep.jsonl``: the configuration, seed, steps,
real training tokens, training seconds (wall, from ``train_log.jsonl``), the process CPU seconds
of the whole run (training + scoring), the load average before and after, and base -> adapted
bits/char. ``--cost`` appends CPU seconds per step (``profile_step.profile``) to
``results/demo_cost.jsonl``; the report turns them into training seconds on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo_sweep.jsonl"
COSTS = HERE / "results" / "demo_cost.jsonl"
REFERENCE_CONFIG = "lora_all_r16"  # the make-demo configuration the step costs are compared with
IDLE_STEP_SECONDS = 4.0  # its step on 2 idle cores (time make demo, 2026-12-04: 121 s / 30 steps)
RUNS = Path(os.environ.get("DEMO_SWEEP_RUNS", "/tmp/demo-sweep"))

LORA_ALL = {"attn_matrices": ["q", "k", "v"], "intermediate_lora": True, "output_lora": True}
LAYERS = 30  # SmolLM2-135M


def _top(k: int) -> dict:
    """Return the all-linear LoRA r=16 config with updates in the top ``k`` layers only."""
    return {"r": 16, "alpha": 32, **LORA_ALL, "leave_out": list(range(LAYERS - k))}


# name -> adapt() overrides (rows of 128 tokens; --report converts steps to idle 2-core seconds).
CONFIGS: dict[str, dict] = {
    "lora_default": {"adapter": "lora", "max_steps": 30},
    "lora_qv_r8_lr2e2": {"adapter": "lora", "max_steps": 30, "lr": 2e-2},
    "lora_all_r16": {"adapter": "lora", "max_steps": 30, "lr": 5e-3,
                     "adapter_config": {"r": 16, "alpha": 32, **LORA_ALL}},
    "lora_all_r16_lr1e2": {"adapter": "lora", "max_steps": 30, "lr": 1e-2,
                           "adapter_config": {"r": 16, "alpha": 32, **LORA_ALL}},
    "lora_all_r16_b4": {"adapter": "lora", "max_steps": 60, "lr": 5e-3, "batch_size": 4,
                        "adapter_config": {"r": 16, "alpha": 32, **LORA_ALL}},
    "seqbn_lr3e3": {"adapter": "seq_bn", "max_steps": 30, "lr": 3e-3},
    "seqbn_lr3e3_b4": {"adapter": "seq_bn", "max_steps": 60, "lr": 3e-3, "batch_size": 4},
    "seqbn_lr1e2_warm": {"adapter": "seq_bn", "max_steps": 30, "lr": 1e-2, "loop": {"warmup_ratio": 0.15}},
    "full_lr1e4": {"adapter": "full", "max_steps": 18, "lr": 1e-4},
    "full_lr3e4_b4": {"adapter": "full", "max_steps": 36, "lr": 3e-4, "batch_size": 4},
    "lora_top20_r16": {"adapter": "lora", "max_steps": 30, "lr": 5e-3, "adapter_config": _top(20)},
    "lora_top15_r16": {"adapter": "lora", "max_steps": 30, "lr": 5e-3, "adapter_config": _top(15)},
    "lora_top10_r16": {"adapter": "lora", "max_steps": 30, "lr": 5e-3, "adapter_config": _top(10)},
    "lora_top15_r16_lr1e2": {"adapter": "lora", "max_steps": 70, "lr": 1e-2, "adapter_config": _top(15)},
    "lora_top15_r16_b4": {"adapter": "lora", "max_steps": 140, "lr": 5e-3, "batch_size": 4,
                          "adapter_config": _top(15)},
    "lora_top15_r16_b4_lr1e2": {"adapter": "lora", "max_steps": 140, "lr": 1e-2, "batch_size": 4,
                                "adapter_config": _top(15)},
    "lora_top15_r16_b2": {"adapter": "lora", "max_steps": 250, "lr": 5e-3, "batch_size": 2,
                          "adapter_config": _top(15)},
}


def _train_record(run_dir: Path) -> dict:
    """Return the last ``train`` record of the run's log."""
    last: dict = {}
    for line in (run_dir / "train_log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("event") == "train":
            last = record
    return last


def run_one(name: str, seed: int, eval_examples: int, max_steps: int | None) -> dict:
    """Adapt with configuration ``name`` and return the result row (also appended to the .jsonl)."""
    from lowres_adapters import adapt

    overrides = {**CONFIGS[name]}
    if max_steps:
        overrides["max_steps"] = max_steps
    run_dir = RUNS / f"{name}-s{seed}-n{eval_examples}-t{overrides['max_steps']}"
    load_before = os.getloadavg()[0]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    result = adapt("nya", seed=seed, eval_examples=eval_examples, output=str(run_dir), overwrite=True, **overrides)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    last = _train_record(run_dir)
    row = {"config": name, "overrides": overrides, "seed": seed, "eval_examples": eval_examples,
           "steps": last.get("step"), "train_tokens": last.get("tokens"), "train_seconds": last.get("elapsed_s"),
           "run_wall_seconds": round(time.perf_counter() - wall0, 1),
           "run_cpu_seconds": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 1),
           "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
           "final_train_loss": last.get("loss"),
           "base_bits_per_char": result.base_bits_per_char, "bits_per_char": result.adapted_bits_per_char}
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def measure_cost(name: str, steps: int) -> dict:
    """Return (and append to ``results/demo_cost.jsonl``) the CPU seconds per training step of ``name``.

    Runs ``profile_step.profile`` (the language recipe's batch of 8 packed rows of 128 tokens) with the
    configuration's adapter: ``steps`` timed steps after one warm-up. CPU seconds hardly depend on
    the machine's load; compare configurations by their ratio to ``lora_all_r16``.
    """
    sys.path.insert(0, str(HERE))
    from profile_step import profile

    overrides = CONFIGS[name]
    load_before = os.getloadavg()[0]
    result = profile(steps, overrides["adapter"], overrides.get("adapter_config", {}),
                     batch_size=overrides.get("batch_size", 0))
    cpu = [record["step_cpu"] for record in result["records"]]
    row = {"config": name, "steps_timed": steps, "rows_per_step": result["rows_per_step"], "threads": result["threads"],
           "step_cpu_mean": round(statistics.fmean(cpu), 3),
           "step_cpu_std": round(statistics.stdev(cpu), 3) if len(cpu) > 1 else None,
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
    with COSTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def report() -> str:
    """Return the Markdown table of every row, and mean ± std per (config, steps, eval_examples)."""
    rows = [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = ["| config | seed | steps | held-out verses | train tokens | train s (wall, load) | bits/char base -> adapted |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['seed']} | {r['steps']} | {r['eval_examples']} | {r['train_tokens']:,} | "
                     f"{r['train_seconds']:.0f} ({r['threads']} thr, load {r['load_before']}-{r['load_after']}) | "
                     f"{r['base_bits_per_char']:.3f} -> {r['bits_per_char']:.3f} |")
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["steps"], r["eval_examples"]), []).append(r["bits_per_char"])
    costs = step_costs()
    reference = costs.get(REFERENCE_CONFIG)
    lines += ["", "| config | steps | held-out verses | n | bits/char mean ± std | training s, idle 2 cores (equivalent) |",
              "|---|---:|---:|---:|---|---:|"]
    for (config, steps, n_eval), values in groups.items():
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        seconds = (f"{steps * IDLE_STEP_SECONDS * costs[config] / reference:.0f}"
                   if reference and config in costs and steps else "")
        lines.append(f"| {config} | {steps} | {n_eval} | {len(values)} | {statistics.mean(values):.3f} ± {std:.3f} "
                     f"| {seconds} |")
    if costs:
        lines += ["", f"CPU seconds per step (1 thread, `--cost`; mean over probes) and the ratio to {REFERENCE_CONFIG}, "
                  f"whose step takes {IDLE_STEP_SECONDS} s on 2 idle cores (`time make demo`):", "",
                  "| config | CPU s per step | ratio |", "|---|---:|---:|"]
        for config, cpu in costs.items():
            ratio = f"{cpu / reference:.3f}" if reference else ""
            lines.append(f"| {config} | {cpu:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def step_costs() -> dict[str, float]:
    """Return each configuration's mean CPU seconds per step over its ``--cost`` probes."""
    if not COSTS.exists():
        return {}
    probes: dict[str, list[float]] = {}
    for line in COSTS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            probes.setdefault(row["config"], []).append(row["step_cpu_mean"])
    return {config: statistics.fmean(values) for config, values in probes.items()}


def main(argv: list[str]) -> int:
    """Run the named configurations (or ``--list`` / ``--report``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-examples", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--cost", action="store_true", help="measure CPU seconds per step instead of training")
    parser.add_argument("--cost-steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.list:
        for name, overrides in CONFIGS.items():
            print(name, json.dumps(overrides))
        return 0
    if args.report:
        text = report()
        RESULTS.with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown:
        print(f"demo_sweep: unknown configuration(s) {unknown}; expected one of {sorted(CONFIGS)}", file=sys.stderr)
        return 2
    if args.cost:
        for name in args.configs:
            measure_cost(name, args.cost_steps)
        return 0
    for name in args.configs:
        for seed in (int(s) for s in args.seeds.split(",")):
            run_one(name, seed, args.eval_examples, args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
