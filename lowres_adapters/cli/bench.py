"""``lowres bench``: adaptation speed of this library against the adapters and PEFT baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lowres_adapters.bench.report import add_peak_fraction, equal_work_table, machine_info, machine_line, markdown_table
from lowres_adapters.data.packs import load_pack_data
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_write_text


@click.command("bench")
@click.option("--quick", is_flag=True, help="A few minutes on 2 cores: 4 steps of 8 rows, one repeat (ttq: budgets 30, 60, 90 s, 100 verses).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows (and the machine) as JSON.")
@click.option("--workload", "workloads", multiple=True, type=click.Choice(["mlm", "clm", "ttq"]),
              help="Workload to run (repeatable; default mlm and clm). ttq: time to quality, held-out "
                   "bits/char of each setup at wall-clock budgets (run on its own).")
@click.option("--language", default="nya", show_default=True, help="Language pack whose verses train and are held out.")
@click.option("--budget", "budgets", multiple=True, type=float,
              help="ttq: training seconds at which to score (repeatable; default 30 60 120 180, quick 30 60 90).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ttq: where the PNG of bits/char against seconds goes (default: next to --output, else ./bench-ttq.png).")
@click.option("--setup", "setups", multiple=True,
              help="Setup to run besides the baseline (repeatable; default adapters+trainer, peft+loop, lowres). "
                   "Variants: lowres:no-packing, lowres:no-trim, lowres:full-logits, lowres:no-negatives, "
                   "lowres:fp32, lowres:compile, lowres:checkpointing (ttq too: e.g. --setup lowres --setup lowres:fp32).")
@click.option("--ablation", is_flag=True, help="Also run every lowres variant.")
@click.option("--steps", type=int, default=None, help="Optimiser steps per setup.")
@click.option("--repeats", type=int, default=None, help="Runs of each setup.")
@click.option("--threads", type=int, default=2, show_default=True, help="Torch threads per run.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON result to this file.")
def bench(quick: bool, as_json: bool, workloads: tuple[str, ...], language: str, budgets: tuple[float, ...],
          plot_path: Path | None, setups: tuple[str, ...], ablation: bool, steps: int | None, repeats: int | None,
          threads: int, output: Path | None) -> None:
    """Train the same adapter three ways on real Chichewa verses and compare tokens/s.

    (a) adapters + HF Trainer, (b) PEFT LoRA + a torch loop, (c) this library. Each run is a
    child process; rows give tokens/s, ms/step, peak RSS, held-out loss and the speed-up over (a).
    Needs `lowres data fetch nya`. `--workload ttq` instead trains each setup for wall-clock
    budgets on the real SmolLM2 and prints held-out bits/char at each, the time each setup needs
    to reach the baseline's last figure, and the path of a plot.
    """
    load_pack_data(language)  # fail early, with the fetch command, when the corpus is missing
    if "ttq" in workloads:
        if len(set(workloads)) > 1:
            raise LowresError("--workload ttq runs on its own; run mlm/clm in another call")
        _time_to_quality(quick, as_json, language, budgets, plot_path, threads, output, setups)
        return
    # lazy: bench.harness and bench.setups import torch
    from lowres_adapters.bench.harness import MAIN_SETUPS, BenchPlan, run_bench
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
    overrides["language"] = language
    plan = BenchPlan.quick(**overrides) if quick else BenchPlan(**overrides)
    before = machine_info(plan.threads)
    rows = run_bench(plan, log=lambda line: click.echo(line, err=True))
    after = machine_info(plan.threads)
    add_peak_fraction(rows, before)
    result = {"plan": {**plan.__dict__}, "machine_before": before, "machine_after": after, "rows": rows}
    _write(result, output)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(markdown_table(rows))
    click.echo("")
    click.echo("Equal work (every setup's real tokens per step; cost per real token, mean ± std over repeats):")
    click.echo(equal_work_table(rows))
    click.echo("")
    click.echo(f"before: {machine_line(before)}")
    click.echo(f"after:  {machine_line(after)}")
    failed = [row for row in rows if "error" in row]
    if failed:
        raise LowresError(f"{len(failed)} setup(s) failed: " + "; ".join(f"{r['workload']} {r['setup']}: {r['error']}"
                                                                      for r in failed))


def _write(result: dict, output: Path | None) -> None:
    """Write the JSON result to ``output`` (whole or not at all)."""
    if output is not None:
        atomic_write_text(output, json.dumps(result, indent=1))


def _time_to_quality(quick: bool, as_json: bool, language: str, budgets: tuple[float, ...], plot_path: Path | None,
                     threads: int, output: Path | None, setups: tuple[str, ...] = ()) -> None:
    """Run the ttq workload and print its table (or JSON) and the plot's path."""
    # lazy: bench.ttq imports torch
    from lowres_adapters.bench.ttq import TtqPlan, markdown, plot, run_ttq
    from lowres_adapters.bench.ttq_setups import ttq_setup_names

    overrides: dict = {"language": language, "threads": threads}
    unknown = [name for name in setups if name not in ttq_setup_names()]
    if unknown:
        raise LowresError(f"--setup {unknown[0]!r} is not a ttq setup; choose from {', '.join(ttq_setup_names())}")
    if setups:  # the baseline always runs first: every ratio is to it
        overrides["setups"] = tuple(dict.fromkeys(("adapters+trainer", *setups)))
    if budgets:
        overrides["budgets"] = tuple(sorted(budgets))
    plan = TtqPlan.quick(**overrides) if quick else TtqPlan(**overrides)
    before = machine_info(plan.threads)
    rows = run_ttq(plan, log=lambda line: click.echo(line, err=True))
    after = machine_info(plan.threads)
    where = plot_path or (output.with_suffix(".png") if output is not None else Path("bench-ttq.png"))
    title = f"{language}: held-out bits/char, {plan.heldout_examples} verses, {plan.threads} threads"
    picture = plot(rows, where, title)
    _write({"plan": {**plan.__dict__}, "machine_before": before, "machine_after": after, "plot": str(picture),
            "rows": rows}, output)
    if as_json:
        click.echo(json.dumps({"rows": rows, "plot": str(picture), "machine_before": before,
                               "machine_after": after}, indent=1))
        return
    click.echo(markdown(rows, "time"))
    click.echo("")
    click.echo("Equal real tokens (the baseline's count at each budget):")
    click.echo(markdown(rows, "tokens"))
    click.echo("")
    click.echo(f"plot: {picture}")
    click.echo(f"before: {machine_line(before)}")
    click.echo(f"after:  {machine_line(after)}")
