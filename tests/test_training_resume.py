"""A run killed (SIGKILL, even mid-checkpoint) or interrupted and resumed ends with the uninterrupted weights.

Every run here trains with dropout, which draws from the global torch RNG, over reshuffled epochs
with checkpoints that land mid-epoch: a resume that skipped the RNG state, the data position or
the optimiser state would end with other weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training_support import reference_run, save_tiny_model, write_corpus

from lowres_adapters.training.checkpoint import checkpoint_steps

SCRIPT = Path(__file__).parent / "_training_script.py"
DROPOUT = "0.1"


def run_script(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *args],
                          env=env, capture_output=True, text=True, timeout=300, check=True)


def kill_when_hanging(run_dir: Path, *args: str) -> None:
    """Start the script, wait until it reports it hangs, SIGKILL it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "hanging").exists():
            assert victim.poll() is None, victim.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never reached the point to kill it at"
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.stderr.close()


def assert_same_tensors(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert set(actual) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name


def train_steps(run_dir: Path) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if r["event"] == "train"]


@pytest.fixture(scope="module")
def clm_reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The uninterrupted 12-step run with dropout (and what a run without dropout ends with)."""
    reference = reference_run(tmp_path_factory.mktemp("reference"), steps=12, dropout=float(DROPOUT))
    without = reference_run(tmp_path_factory.mktemp("no-dropout"), steps=12)
    # dropout really draws from the RNG: otherwise these tests could not see a lost RNG state
    assert any(not torch.equal(reference[name], without[name]) for name in reference)
    return reference


def test_sigkill_then_resume_matches_the_uninterrupted_run(tmp_path, clm_reference):
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    kill_when_hanging(run_dir, "--steps", "12", "--save-every", "4", "--hang-at", "10", "--dropout", DROPOUT)

    # steps 9 and 10 are lost: only complete checkpoints remain, the newest at step 8 (mid-epoch 3)
    assert checkpoint_steps(run_dir) == [4, 8]
    assert json.loads((run_dir / "checkpoints" / "step-8" / "state.json").read_text())["position"] == 16
    assert not (run_dir / "weights.safetensors").exists()

    run_script(run_dir, "--steps", "12", "--save-every", "4", "--resume", "--dropout", DROPOUT)
    assert_same_tensors(clm_reference, load_file(str(run_dir / "weights.safetensors")))
    assert train_steps(run_dir) == list(range(1, 13))
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "eval"] == [4, 8, 12]


def test_sigkill_while_a_checkpoint_is_written_resumes_from_the_previous_one(tmp_path, clm_reference):
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    kill_when_hanging(run_dir, "--steps", "12", "--save-every", "4", "--hang-in-checkpoint", "8",
                      "--dropout", DROPOUT)

    # the half-written step-8 checkpoint is under its staging name and is never taken for a checkpoint
    staging = run_dir / "checkpoints" / ".tmp-step-8"
    assert (staging / "trainable.safetensors").exists() and not (staging / "state.json").exists()
    assert checkpoint_steps(run_dir) == [4]

    run_script(run_dir, "--steps", "12", "--save-every", "4", "--resume", "--dropout", DROPOUT)
    assert_same_tensors(clm_reference, load_file(str(run_dir / "weights.safetensors")))
    assert train_steps(run_dir) == list(range(1, 13))
    assert not (run_dir / "checkpoints").exists()


def test_masked_lm_resume_with_dropout_matches_the_uninterrupted_run(tmp_path):
    options = dict(steps=10, objective="mlm", dropout=float(DROPOUT))
    reference = reference_run(tmp_path / "reference", **options)
    with pytest.raises(KeyboardInterrupt):
        reference_run(tmp_path / "run", save_every=4, crash_at=7, **options)
    assert checkpoint_steps(tmp_path / "run") == [4]
    resumed = reference_run(tmp_path / "run", save_every=4, resume=True, **options)
    assert_same_tensors(reference, resumed)
    assert train_steps(tmp_path / "run") == list(range(1, 11))


def test_lowres_adapt_resume_on_the_fast_path_matches_the_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """Packing, masked-only logits, vocabulary trim and the token cache, interrupted by Ctrl-C and resumed."""
    import lowres_adapters.training.loop as loop_module
    from lowres_adapters.artifact import read_tensors
    from lowres_adapters.cli import main

    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    model_dir = tmp_path / "model"
    save_tiny_model(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.1}))
    train, held_out = write_corpus(tmp_path, repeat=6)

    def adapt(output: str, *extra: str) -> int:
        args = ["adapt", "tum", "--model", str(model_dir), "--adapter", "lora", "--text", str(train),
                "--eval-text", str(held_out), "--max-steps", "9", "--batch-size", "4", "--lr", "1e-2",
                "--set", "loop.save_every=3", "--quiet", "--output", str(tmp_path / output), *extra]
        try:
            main(args)
        except SystemExit as done:
            return done.code
        return 0

    assert adapt("reference") == 0, capsys.readouterr().err
    loop = json.loads((tmp_path / "reference" / "run_config.json").read_text())["loop"]
    assert loop["packing"] and loop["masked_only_logits"] and loop["vocab_trim"] and loop["token_cache"]

    apply_update, calls = loop_module._apply_update, []

    def interrupted_update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:  # Ctrl-C during step 8: steps 7 and 8 are lost
            raise KeyboardInterrupt
        return apply_update(*args, **kwargs)

    monkeypatch.setattr(loop_module, "_apply_update", interrupted_update)
    assert adapt("run") == 130
    monkeypatch.setattr(loop_module, "_apply_update", apply_update)
    stage = next(path.parent for path in (tmp_path / "run").rglob("checkpoints"))
    assert checkpoint_steps(stage) == [6]

    assert adapt("run", "--resume") == 0, capsys.readouterr().err
    assert_same_tensors(read_tensors(tmp_path / "reference"), read_tensors(tmp_path / "run"))
    reference_metrics = json.loads((tmp_path / "reference" / "metrics.json").read_text())["adapted"]
    resumed_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["adapted"]
    assert resumed_metrics["bits_per_char"] == reference_metrics["bits_per_char"]
