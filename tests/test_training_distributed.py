"""Two processes through ``accelerate launch`` give the one-process result at the same global batch, also
when they are interrupted and resumed from a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from _training_script import first_step_gradients
from training_support import reference_run

from lowres_adapters.training.checkpoint import checkpoint_steps

SCRIPT = Path(__file__).parent / "_training_script.py"


def accelerate_command() -> list[str]:
    found = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert found, "accelerate is a dependency and installs the `accelerate` command"
    return [found]


def launch_two(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the training script as two processes (the torchrun launcher, gloo on CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*accelerate_command(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT), str(run_dir), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_two_processes_interrupted_and_resumed_match_one_process_with_accumulation(tmp_path):
    # one process (this one, one thread), global batch 8 as 2 micro-batches of 4
    one = reference_run(tmp_path / "one", steps=8, accum=2)
    # two processes, global batch 8 as 1 micro-batch of 4 each; both stop after step 6 (checkpoint at 4) ...
    run_dir = tmp_path / "two"
    crashed = launch_two(run_dir, "--steps", "8", "--save-every", "4", "--crash-at", "6")
    assert crashed.returncode != 0 and "KeyboardInterrupt" in crashed.stderr, crashed.stderr[-2000:]
    assert checkpoint_steps(run_dir) == [4]
    assert {path.name for path in (run_dir / "checkpoints" / "step-4").glob("rng-rank*.pt")} == {
        "rng-rank0.pt", "rng-rank1.pt"}
    assert not (run_dir / "weights.safetensors").exists()
    # ... and two processes resume from step 4 to the one-process result
    resumed = launch_two(run_dir, "--steps", "8", "--save-every", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    two = load_file(str(run_dir / "weights.safetensors"))
    assert set(one) == set(two)
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-5, atol=1e-6)
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    starts = [record for record in records if record["event"] == "start"]
    assert [(r["processes"], r["resumed_from"]) for r in starts] == [(2, None), (2, 4)]
    assert [r["step"] for r in records if r["event"] == "train"] == list(range(1, 9))


def test_two_processes_hold_the_one_process_gradients_through_ddp(tmp_path):
    """The gradients themselves, not only the trained weights (AdamW hides a gradient's scale): two DDP
    processes of two micro-batches each (all-reduced after the second) hold the token-weighted mean
    gradient of one process's four micro-batches, and the step's global loss sum and token counts are
    the one-process figures."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses
    try:
        one = first_step_gradients(tmp_path / "one", accum=4)
    finally:
        torch.set_num_threads(threads)
    launched = launch_two(tmp_path / "two", "--gradients", "--accum", "2")
    assert launched.returncode == 0, launched.stderr[-2000:]
    two = load_file(str(tmp_path / "two" / "gradients.safetensors"))
    assert float(one["ddp"]) == 0.0 and float(two["ddp"]) == 1.0  # one process: no wrapper; two: DDP
    assert two["totals"][1] == one["totals"][1] and two["totals"][2] == one["totals"][2]  # exact token counts
    torch.testing.assert_close(two["totals"], one["totals"], rtol=1e-12, atol=0)
    assert set(one) == set(two)
    for name in set(one) - {"totals", "ddp"}:
        assert one[name].abs().sum() > 0
        torch.testing.assert_close(two[name], one[name], rtol=1e-6, atol=1e-9)


def test_one_process_is_the_plain_fast_path():
    from lowres_adapters.training.distributed import DataParallel, ProcessInfo

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    replicas = DataParallel.build(model, lambda m, b: (m(b["x"]).sum(), 1), optimizer, list(model.parameters()),
                                  ProcessInfo(), torch.device("cpu"))
    assert replicas.accelerator is None and replicas.wrapped is None and replicas.optimizer is optimizer
    assert not replicas.needs_backward(0) and replicas.needs_backward(3)
    total = torch.tensor([1.0, 2.0])
    assert ProcessInfo().total(total) is total


def test_trained_module_syncs_trained_parameters_outside_the_model_and_nothing_frozen():
    """A task head lives outside the model: DDP must reduce its gradients too; frozen weights and buffers
    are neither broadcast nor reduced."""
    from lowres_adapters.training.distributed import TrainedModule

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    head = torch.nn.Linear(3, 2)
    model[0].weight.requires_grad_(False)
    trained = [model[0].bias, *head.parameters()]
    module = TrainedModule(model, lambda m, batch: (head(m(batch["x"])).sum(), 1), trained)
    ids = {id(p) for p in module.parameters()}
    assert all(id(p) in ids for p in trained)
    ignored = set(module._ddp_params_and_buffers_to_ignore)
    assert "model.0.weight" in ignored and "model.0.bias" not in ignored
    assert {"model.1.running_mean", "model.1.running_var", "model.1.num_batches_tracked"} <= ignored
    assert not any(name.startswith("outside.") for name in ignored)
    loss, count = module({"x": torch.ones(4, 3)})
    loss.backward()
    assert count == 1 and all(p.grad is not None for p in trained)


def test_sharding_and_mixed_precision_launch_settings_are_named_not_silently_dropped():
    from lowres_adapters.training.distributed import ignored_launch_settings

    assert ignored_launch_settings({}) == []
    assert ignored_launch_settings({"ACCELERATE_USE_FSDP": "false", "ACCELERATE_MIXED_PRECISION": "no"}) == []
    notes = ignored_launch_settings({"ACCELERATE_USE_FSDP": "true", "ACCELERATE_USE_DEEPSPEED": "True",
                                     "ACCELERATE_MIXED_PRECISION": "bf16"})
    assert len(notes) == 3 and "FSDP" in notes[0] and "DeepSpeed" in notes[1] and "--precision" in notes[2]


def test_accelerate_is_set_up_without_sharding_and_the_environment_is_restored(monkeypatch):
    from lowres_adapters.training import distributed

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    with distributed._without_sharding():
        assert os.environ["ACCELERATE_USE_DEEPSPEED"] == "false" and os.environ["ACCELERATE_USE_FSDP"] == "false"
    assert os.environ["ACCELERATE_USE_DEEPSPEED"] == "true" and "ACCELERATE_USE_FSDP" not in os.environ


def test_a_device_other_than_the_launched_one_is_one_line(monkeypatch):
    from types import SimpleNamespace

    from lowres_adapters.errors import LowresError
    from lowres_adapters.training import distributed

    monkeypatch.setattr(distributed, "PartialState", lambda: SimpleNamespace(device=torch.device("cuda", 0)))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(LowresError, match="--device cpu: the processes were launched for cuda"):
        distributed.DataParallel.build(model, lambda m, b: (m(b).sum(), 1), torch.optim.SGD(model.parameters(), 0.1),
                                       list(model.parameters()), distributed.ProcessInfo(0, 2, 0), torch.device("cpu"))


def test_lowres_adapt_through_accelerate_launch_matches_one_process(tmp_path):
    """`accelerate launch ... -m lowres_adapters.cli adapt` on two CPU processes: one complete run folder,
    the one-process figures (tiny model, LoRA, own text files)."""
    from training_support import save_tiny_model, write_corpus

    model = save_tiny_model(tmp_path / "model")
    train_file, held_out = write_corpus(tmp_path)
    args = ["adapt", "tum", "--model", str(model), "--adapter", "lora", "--text", str(train_file), "--eval-text",
            str(held_out), "--max-steps", "3", "--batch-size", "4", "--lr", "1e-2", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "lowres_adapters.cli", *args, "-o", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [*accelerate_command(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lowres_adapters.cli", *args,
         "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stderr.count("trainable parameters:") == 1  # only the first process reports
    figures = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two")]
    logs = [[json.loads(line) for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]
            for name in ("one", "two")]
    assert [r["processes"] for r in logs[1] if r["event"] == "start"] == [2]
    assert [r["tokens"] for r in logs[0] if r["event"] == "train"] == [r["tokens"] for r in logs[1]
                                                                        if r["event"] == "train"]
    assert figures[1]["adapted"]["bits_per_char"] == pytest.approx(figures[0]["adapted"]["bits_per_char"], rel=1e-5)
    assert figures[1]["adapted"]["bits_per_char"] != figures[1]["base"]["bits_per_char"]
    assert (tmp_path / "two" / "adapter.safetensors").exists()
