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
from typing import Any, Callable

import torch

from lowres_adapters.io import atomic_write_text


def run_and_write(measure: Callable[[], dict[str, Any]], output: Path) -> int:
    """Run ``measure`` with this process's thread count (``OMP_NUM_THREADS``); write its result, or
    its error as one line plus the traceback, to ``output`` as JSON (whole or not at all). Return
    the exit status: 0, or 1 when ``measure`` failed (the parent reports it as the row's error)."""
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    try:
        result = measure()
        result["threads"] = torch.get_num_threads()
        status = 0
    except Exception as error:  # noqa: BLE001 - the parent reports it as the row's error
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result = {"error": f"{type(error).__name__}: {message}", "traceback": traceback.format_exc()}
        status = 1
    atomic_write_text(output, json.dumps(result, default=str))
    return status


def run_child(config_json: str, output: Path) -> int:
    """Run the setup described by ``config_json``; write the result (or the error) to ``output``."""
    # lazy: the setups import torch, adapters, peft and transformers' Trainer
    from lowres_adapters.bench.flops import step_flops
    from lowres_adapters.bench.setups import RunConfig, run_setup
    from lowres_adapters.bench.workloads import load_workload

    config = RunConfig(**json.loads(config_json))

    def measure() -> dict[str, Any]:
        data = load_workload(config.workload, heldout_examples=config.heldout_examples,
                             max_length=config.row_length, language=config.language)
        result: dict[str, Any] = run_setup(config, data)
        model_config = result.pop("model_config")
        result["step_gflop"] = step_flops(model_config, int(result["slots_per_step"]), result["attended_per_slot"],
                                          int(result["scored_per_step"]), int(result["scored_vocab"])) / 1e9
        result["achieved_gflops"] = result["step_gflop"] / (result["ms_per_step"] / 1000.0)
        result["tokenizer"] = data.tokenizer_note
        return result

    return run_and_write(measure, output)


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1], Path(sys.argv[2])))
