"""Run ``lowres bench`` and keep its result under ``benchmarks/results/``.

Usage::

    .venv/bin/python benchmarks/run.py              # the full bench (both workloads, 2 repeats)
    .venv/bin/python benchmarks/run.py --quick      # a few minutes
    .venv/bin/python benchmarks/run.py --ablation --workload clm

Every argument is passed to ``lowres bench``. Writes ``results/<name>.json`` (rows, plan, machine
before and after) and ``results/<name>.md`` (the table and the command), where ``<name>`` is
``quick`` or ``full`` (plus ``-ablation``).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(arguments: list[str]) -> int:
    """Run the bench with ``arguments`` and write the JSON and Markdown results."""
    from lowres_adapters.bench.report import machine_line, markdown_table

    name = ("quick" if "--quick" in arguments else "full") + ("-ablation" if "--ablation" in arguments else "")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    output = results / f"{name}.json"
    command = [sys.executable, "-m", "lowres_adapters", "bench", *arguments, "--output", str(output)]
    shown = "lowres bench " + " ".join(shlex.quote(a) for a in arguments)
    status = subprocess.call(command, stdout=subprocess.DEVNULL)
    if not output.exists():
        return status or 1
    result = json.loads(output.read_text(encoding="utf-8"))
    lines = [f"Command: `{shown}`", "", markdown_table(result["rows"]), "",
             f"- before: {machine_line(result['machine_before'])}",
             f"- after: {machine_line(result['machine_after'])}", ""]
    (results / f"{name}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
