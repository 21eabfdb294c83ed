"""Two processes through ``accelerate launch`` give the one-process result at the same global batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from training_support import reference_run

SCRIPT = Path(__file__).parent / "_training_script.py"


def accelerate_command() -> list[str]:
    found = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert found, "accelerate is a dependency and installs the `accelerate` command"
    return [found]


def test_two_processes_match_one_process_with_accumulation(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # one process (this one, one thread), global batch 8 as 2 micro-batches of 4
    one = reference_run(tmp_path / "one", steps=6, accum=2)
    # two processes, global batch 8 as 1 micro-batch of 4 each (the torchrun launcher, gloo on CPU)
    launched = subprocess.run(
        [*accelerate_command(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT), str(tmp_path / "two"), "--steps", "6"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    two = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert set(one) == set(two)
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-5, atol=1e-6)
    start = (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()[0]
    assert '"processes": 2' in start
