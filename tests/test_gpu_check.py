"""benchmarks/gpu_check.py on a machine without CUDA: it says so and exits 0 without training."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    module = _module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(module, "adapt_on", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    assert module.main(["--steps", "1"]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_with_cuda_a_cpu_batch_or_loss_gap_fails(monkeypatch, capsys):
    module = _module()
    monkeypatch.setattr(module, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    losses = {("cuda", "fp32"): 2.0, ("cuda", "bf16"): 2.01, ("cpu", "fp32"): 2.5}
    monkeypatch.setattr(module, "adapt_on", lambda device, precision, steps, out: {
        "device": device, "precision": precision, "loss": losses[device, precision], "tokens_per_s": 1.0,
        "batch_devices": ["cpu"] if precision == "bf16" else [device], "base_dtype": "float32"})
    monkeypatch.setattr(module, "peft_plain_loop", lambda steps: {
        "device": "cuda", "precision": "fp32 (PEFT)", "loss": 2.0, "tokens_per_s": 1.0, "batch_devices": ["cuda"]})
    assert module.main(["--steps", "1"]) == 1
    errors = capsys.readouterr().err
    assert "cuda bf16: batches on ['cpu']" in errors and "beyond relative" in errors
    assert "cuda bf16: the base loaded in float32, not bfloat16" in errors
