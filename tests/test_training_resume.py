"""A run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from training_support import reference_run

from lowres_adapters.training.checkpoint import checkpoint_steps

SCRIPT = Path(__file__).parent / "_training_script.py"


def run_script(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *args],
                          env=env, capture_output=True, text=True, timeout=300, check=True)


def test_sigkill_then_resume_matches_the_uninterrupted_run(tmp_path):
    reference = reference_run(tmp_path / "reference", steps=12)

    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), "--steps", "12", "--save-every", "3",
                               "--hang-at", "8"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "hanging").exists():
            assert victim.poll() is None, victim.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never reached step 8"
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.stderr.close()

    # steps 7 and 8 are lost: only complete checkpoints remain, the newest at step 6
    assert checkpoint_steps(run_dir) == [3, 6]
    assert not (run_dir / "weights.safetensors").exists()

    run_script(run_dir, "--steps", "12", "--save-every", "3", "--resume")
    resumed = load_file(str(run_dir / "weights.safetensors"))
    assert set(resumed) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(tensor, resumed[name]), name

    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(1, 13))
    assert [r["step"] for r in records if r["event"] == "eval"] == [4, 8, 12]
