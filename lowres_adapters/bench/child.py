"""Run one bench setup in this process and write its measurements as JSON.

Usage (the harness does this): ``python -m lowres_adapters.bench.child CONFIG_JSON OUTPUT_JSON``.
The thread count comes from ``OMP_NUM_THREADS``, set by the harness.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch


def run_child(config_json: str, output: Path) -> int:
    """Run the setup described by ``config_json``; write the result (or the error) to ``output``."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.bench.flops import step_flops
    from lowres_adapters.bench.setups import RunConfig, run_setup
    from lowres_adapters.bench.workloads import load_workload

    config = RunConfig(**json.loads(config_json))
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    try:
        data = load_workload(config.workload, heldout_examples=config.heldout_examples,
                             max_length=config.row_length, language=config.language)
        result: dict[str, Any] = run_setup(config, data)
        model_config = result.pop("model_config")
        result["step_gflop"] = step_flops(model_config, int(result["slots_per_step"]), result["attended_per_slot"],
                                          int(result["scored_per_step"]), int(result["scored_vocab"])) / 1e9
        result["achieved_gflops"] = result["step_gflop"] / (result["ms_per_step"] / 1000.0)
        result["tokenizer"] = data.tokenizer_note
        result["threads"] = torch.get_num_threads()
        status = 0
    except Exception as error:  # noqa: BLE001 - the parent reports it as the row's error
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result = {"error": f"{type(error).__name__}: {message}",
                  "traceback": traceback.format_exc()}
        status = 1
    temporary = output.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, default=str), encoding="utf-8")
    os.replace(temporary, output)
    return status


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1], Path(sys.argv[2])))
