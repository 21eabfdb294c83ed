"""Time ``lowres evaluate RUN_DIR`` (wall and CPU seconds, machine load) and keep the figures it printed.

Usage::

    .venv/bin/python benchmarks/evaluate_speed.py runs/demo-nya                 # defaults, 2 threads
    .venv/bin/python benchmarks/evaluate_speed.py runs/demo-nya --threads 1 --cold -- --base-prompt run

Runs the command in a child process (``OMP_NUM_THREADS`` = ``--threads``), with ``--cold`` first
pointing the base-score cache at an empty folder so the base model is scored too. Appends one
record to ``results/evaluate_speed.json`` and rewrites ``results/evaluate_speed.md``: wall
seconds, CPU seconds of the child (user + system; less sensitive to other load than wall time),
load average before and after, and the base and adapted figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "evaluate_speed.json"
SHOWN = ("bits_per_char", "chrf", "chrf_pp", "bleu", "target_language_share", "repeated_ngram_rate")


def run_once(run_dir: str, threads: int, cold: bool, extra: list[str]) -> dict:
    """Run ``lowres evaluate`` once and return the timing record."""
    command = [sys.executable, "-m", "lowres_adapters", "evaluate", run_dir, "--json", *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as empty:
        if cold:  # an empty cache folder holding links to the data and models, but no base scores
            from lowres_adapters.paths import cache_dir

            for entry in cache_dir().iterdir():
                if entry.name != "base-scores":
                    os.symlink(entry, Path(empty) / entry.name)
            environment["LOWRES_CACHE"] = empty
        load_before, started = os.getloadavg(), time.time()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.time() - started
    if completed.returncode:
        raise SystemExit(completed.stderr[-2000:])
    figures = json.loads(completed.stdout)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                            check=False).stdout.strip()
    return {"commit": commit or None, "command": "lowres evaluate " + " ".join(shlex.quote(a) for a in [run_dir, *extra]),
            "threads": threads, "cold_base_cache": cold, "wall_seconds": round(wall, 1),
            "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "generation": figures.get("generation"), "prompt_formats": figures.get("prompt_formats"),
            "base": {key: figures["base"].get(key) for key in SHOWN},
            "adapted": {key: figures["adapted"].get(key) for key in SHOWN}}


def markdown(records: list[dict]) -> str:
    """Return the table of all records."""
    lines = ["| when | code | command | threads | base cache | wall s | CPU s | load before → after | "
             "base bits/char, chrF++ | adapted bits/char, chrF++ |", "|---|---|---|---:|---|---:|---:|---|---|---|"]
    for r in records:
        lines.append(f"| {r['when']} | {r.get('commit') or '–'} | `{r['command']}` | {r['threads']} "
                     f"| {'cold' if r['cold_base_cache'] else 'warm'} "
                     f"| {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['load_before'][0]:.1f} → "
                     f"{r['load_after'][0]:.1f} | {r['base']['bits_per_char']:.3f}, {r['base']['chrf_pp']:.2f} | "
                     f"{r['adapted']['bits_per_char']:.3f}, {r['adapted']['chrf_pp']:.2f} |")
    return "\n".join(lines) + "\n"


def main(arguments: list[str]) -> int:
    """Time one evaluation and append it to the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="score the base model too (empty base-score cache)")
    split = arguments.index("--") if "--" in arguments else len(arguments)
    options = parser.parse_args(arguments[:split])  # what follows "--" goes to lowres evaluate
    record = run_once(options.run_dir, options.threads, options.cold, arguments[split + 1:])
    records = json.loads(RESULTS.read_text("utf-8")) if RESULTS.exists() else []
    records.append(record)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(records, indent=2) + "\n", "utf-8")
    RESULTS.with_suffix(".md").write_text(markdown(records), "utf-8")
    print(markdown([record]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
