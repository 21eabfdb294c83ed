"""``lowres bench``: adaptation speed of this library against the adapters and PEFT baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lowres_adapters.bench.report import machine_info, machine_line, markdown_table
from lowres_adapters.data.packs import load_pack_data
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_write_text


@click.command("bench")
@click.option("--quick", is_flag=True, help="A few minutes on 2 cores: 4 steps of 8 rows, one repeat.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows (and the machine) as JSON.")
@click.option("--workload", "workloads", multiple=True, type=click.Choice(["mlm", "clm"]),
              help="Workload to run (repeatable; default both).")
@click.option("--setup", "setups", multiple=True,
              help="Setup to run besides the baseline (repeatable; default adapters+trainer, peft+loop, lowres). "
                   "Variants: lowres:no-packing, lowres:no-trim, lowres:full-logits, lowres:no-negatives, "
                   "lowres:fp32, lowres:compile, lowres:checkpointing.")
@click.option("--ablation", is_flag=True, help="Also run every lowres variant.")
@click.option("--steps", type=int, default=None, help="Optimiser steps per setup.")
@click.option("--repeats", type=int, default=None, help="Runs of each setup.")
@click.option("--threads", type=int, default=2, show_default=True, help="Torch threads per run.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON result to this file.")
def bench(quick: bool, as_json: bool, workloads: tuple[str, ...], setups: tuple[str, ...], ablation: bool,
          steps: int | None, repeats: int | None, threads: int, output: Path | None) -> None:
    """Train the same adapter three ways on real Chichewa verses and compare tokens/s.

    (a) adapters + HF Trainer, (b) PEFT LoRA + a torch loop, (c) this library. Each run is a
    child process; rows give tokens/s, ms/step, peak RSS, held-out loss and the speed-up over (a).
    Needs `lowres data fetch nya`.
    """
    # lazy: bench.harness imports torch
    from lowres_adapters.bench.harness import MAIN_SETUPS, BenchPlan, run_bench
    # lazy: bench.setups imports torch
    from lowres_adapters.bench.setups import LOWRES_VARIANTS

    chosen = tuple(setups) or MAIN_SETUPS
    if ablation:
        chosen = tuple(dict.fromkeys((*chosen, *LOWRES_VARIANTS)))
    overrides = {"setups": chosen, "threads": threads}
    if workloads:
        overrides["workloads"] = tuple(workloads)
    if steps is not None:
        overrides["steps"] = steps
    if repeats is not None:
        overrides["repeats"] = repeats
    plan = BenchPlan.quick(**overrides) if quick else BenchPlan(**overrides)

    load_pack_data("nya")  # fail early, with the fetch command, when the corpus is missing
    before = machine_info(plan.threads)
    rows = run_bench(plan, log=lambda line: click.echo(line, err=True))
    after = machine_info(plan.threads)
    result = {"plan": {**plan.__dict__}, "machine_before": before, "machine_after": after, "rows": rows}
    if output is not None:
        atomic_write_text(output, json.dumps(result, indent=1))
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(markdown_table(rows))
    click.echo("")
    click.echo(f"before: {machine_line(before)}")
    click.echo(f"after:  {machine_line(after)}")
    failed = [row for row in rows if "error" in row]
    if failed:
        raise LowresError(f"{len(failed)} setup(s) failed: " + "; ".join(f"{r['workload']} {r['setup']}: {r['error']}"
                                                                      for r in failed))
