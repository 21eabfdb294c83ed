"""Where one optimiser step of the default path goes: data, body forward, head + loss forward, head
backward, body backward, optimiser (issue 19, item 4).

Builds exactly what ``lowres bench --workload ttq`` runs as ``lowres`` (the ``language`` recipe's
decoder defaults on SmolLM2-135M, ``nya`` Old Testament verses), then times each phase of
``--steps`` steps after one warm-up step. The body's forward ends when its forward hook fires; the
head's backward ends when the gradient reaches the body's output (a tensor hook).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_step.py --steps 3 [--adapter lora --set r=16 ...]

Writes ``results/profile_step.json`` and prints a Markdown table (mean ± std seconds per phase).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PHASES = ("data (collate)", "body forward", "head + loss forward", "head backward", "body backward",
          "optimiser (clip + AdamW + zero)")


def profile(steps: int, adapter: str, adapter_config: dict, model: str = "", batch_size: int = 0) -> dict:
    """Return per-phase seconds of ``steps`` default-path steps (after one warm-up step).

    Args:
        steps: Timed steps (after one warm-up step).
        adapter: Adapter type (empty: the recipe's default).
        adapter_config: Adapter config fields.
        model: ``"tiny"`` for a tiny random model, else the default model.
        batch_size: Packed rows per step; 0 keeps the recipe's default.
    """
    from lowres_adapters.bench.ttq import TtqConfig
    from lowres_adapters.bench.ttq_setups import TtqData, default_job
    from lowres_adapters.training.fast_lm import split_lm_model
    from lowres_adapters.training.loop import _freeze_all_but, micro_batch_generator

    config = TtqConfig(setup="lowres", budgets=(1.0,), heldout_examples=1, adapter=adapter,
                       adapter_config=adapter_config, model=model)
    data = TtqData(config)
    job, settings, kind = default_job(config, data)
    parameters = list(job.parameters.values())
    _freeze_all_but(job.model, job.parameters)  # as the loop does: only the adapter trains
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    body = split_lm_model(job.model).body
    marks: dict[str, float] = {}

    def body_done(module, inputs, output) -> None:
        marks["body_forward_end"] = time.perf_counter()
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        if hidden.requires_grad:
            hidden.register_hook(lambda grad: marks.__setitem__("head_backward_end", time.perf_counter()))

    body.register_forward_hook(body_done)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(job.train_features), generator=generator).tolist()
    rows = batch_size or settings.batch_size
    records = []
    job.model.train()
    for step in range(steps + 1):
        t0, cpu0 = time.perf_counter(), time.process_time()
        batch = job.collate([job.train_features[i] for i in order[step * rows:(step + 1) * rows]],
                            micro_batch_generator(settings.seed, step, 0))
        t1 = time.perf_counter()
        loss, count = job.loss_fn(job.model, batch)
        t2 = time.perf_counter()
        (loss * count).backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if step == 0:
            continue  # warm-up: one-time allocations
        body_end, head_back_end = marks["body_forward_end"], marks["head_backward_end"]
        records.append({"data (collate)": t1 - t0, "body forward": body_end - t1,
                        "head + loss forward": t2 - body_end, "head backward": head_back_end - t2,
                        "body backward": t3 - head_back_end, "optimiser (clip + AdamW + zero)": t4 - t3,
                        "step": t4 - t0, "step_cpu": time.process_time() - cpu0, "real_tokens": int(job.count_tokens(batch))})
    return {"adapter": kind, "adapter_config": adapter_config, "rows_per_step": rows,
            "row_length": settings.max_length, "bf16": bool(settings.bf16), "threads": torch.get_num_threads(),
            "load_before": None, "records": records}


def table(result: dict) -> str:
    """Return the phases as a Markdown table (mean ± std seconds, share of the step)."""
    records = result["records"]
    step = statistics.fmean(r["step"] for r in records)
    lines = ["| phase | seconds (mean ± std) | share of the step |", "|---|---:|---:|"]
    for phase in (*PHASES, "step", "step_cpu"):
        values = [r[phase] for r in records]
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        lines.append(f"| {phase} | {statistics.fmean(values):.3f} ± {std:.3f} | "
                     f"{statistics.fmean(values) / step:.0%} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Profile and write ``results/profile_step.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--adapter", default="")
    parser.add_argument("--model", default="", help="'tiny': a tiny random model (a smoke test of this script)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="adapter config field=JSON value")
    args = parser.parse_args(argv)
    adapter_config = {}
    for item in args.sets:
        key, _, value = item.partition("=")
        adapter_config[key] = json.loads(value)
    load = os.getloadavg()
    result = profile(args.steps, args.adapter, adapter_config, args.model)
    result["load_before"], result["load_after"] = [round(x, 2) for x in load], [round(x, 2) for x in os.getloadavg()]
    (HERE / "results" / "profile_step.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(table(result))
    print(f"\nadapter {result['adapter']} {adapter_config}, {result['rows_per_step']} rows x {result['row_length']}, "
          f"bf16 {result['bf16']}, {result['threads']} threads, load {result['load_before']} -> {result['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
