"""Device and precision choice (lowres_adapters.devices) and their use in the loop, on the CPU."""

from __future__ import annotations

import contextlib

import pytest
import torch

from lowres_adapters.devices import (
    autocast,
    choose_device,
    choose_precision,
    to_device,
    under_autocast,
)
from lowres_adapters.errors import LowresError
from lowres_adapters.training import loop as loop_module
from lowres_adapters.training.settings import SettingsError, resolve_loop_settings


@pytest.mark.parametrize("available, expected", [
    (["cuda", "mps", "cpu"], "cuda"), (["mps", "cpu"], "mps"), (["cpu"], "cpu")])
def test_auto_takes_the_best_available_device(available, expected):
    assert choose_device("auto", available).type == expected


def test_cuda_process_takes_its_own_gpu():
    assert choose_device("cuda", ["cuda", "cpu"], local_index=1) == torch.device("cuda", 1)
    assert choose_device("cpu", ["cuda", "cpu"], local_index=1) == torch.device("cpu")


def test_missing_device_is_one_clear_line():
    with pytest.raises(LowresError) as error:
        choose_device("cuda", ["cpu"])
    message = str(error.value)
    assert "\n" not in message and "--device cuda" in message and "not available" in message
    with pytest.raises(LowresError, match="expected one of"):
        choose_device("tpu", ["cpu"])


def test_cuda_is_refused_here_without_a_fake_list_when_torch_has_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LowresError, match="CUDA"):
        choose_device("cuda")
    assert choose_device("auto").type in ("cpu", "mps")


def test_precision_choices():
    cpu, gpu, mps = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")
    assert choose_precision("auto", cpu, cpu_bf16=False) == "fp32"
    assert choose_precision("auto", cpu, cpu_bf16=True) == "bf16"
    assert choose_precision("fp32", cpu, cpu_bf16=True) == "fp32"
    assert choose_precision("auto", gpu, gpu_bf16=lambda: True) == "bf16"
    assert choose_precision("auto", gpu, gpu_bf16=lambda: False) == "fp16"
    assert choose_precision("fp32", gpu, gpu_bf16=lambda: True) == "fp32"
    assert choose_precision("auto", mps) == "fp32"
    with pytest.raises(LowresError, match="fp16 is for GPUs"):
        choose_precision("fp16", cpu)
    with pytest.raises(LowresError, match="does not compute bf16"):
        choose_precision("bf16", gpu, gpu_bf16=lambda: False)


def test_explicit_precision_sets_the_cpu_bf16_switch():
    assert resolve_loop_settings({"bf16": True}, {"precision": "fp32"}).bf16 is False
    assert resolve_loop_settings({"bf16": False}, {"precision": "bf16"}).bf16 is True
    assert resolve_loop_settings({"bf16": True}, {}).bf16 is True
    with pytest.raises(SettingsError, match="device"):
        resolve_loop_settings({}, {"device": "gpu"})


def test_autocast_follows_precision_and_batches_move():
    linear = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert linear(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert linear(torch.ones(1, 4)).dtype == torch.float32
    loss_fn = under_autocast(lambda model, batch: (model(batch["x"]).sum(), 1), torch.device("cpu"), "bf16")
    loss, _ = loss_fn(linear, to_device({"x": torch.ones(1, 4), "n": 3}, torch.device("cpu")))
    assert loss.dtype == torch.float32  # back in float32 for the loop's sums


def _train_tiny(monkeypatch, **loop) -> dict[str, torch.Tensor]:
    from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
    from lowres_adapters.training.lm_objectives import objective_named
    from lowres_adapters.training.loop import TrainingJob, select_parameters, train
    from lowres_adapters.training.settings import LoopSettings

    moved = []
    original_to_device = loop_module.to_device
    monkeypatch.setattr(loop_module, "to_device", lambda batch, device: moved.append(device) or
                        original_to_device(batch, device))
    torch.manual_seed(0)
    model, tokenizer = tiny_model("llama")
    objective = objective_named("clm")
    features = objective.tokenize(tokenizer, list(TINY_CORPUS) * 2, 32)
    parameters = select_parameters(model, ["*q_proj*"])
    job = TrainingJob(model=model, parameters=parameters, train_features=features,
                      collate=objective.collator(tokenizer), loss_fn=objective.loss, eval_features=features[:4])
    train(job, LoopSettings(max_steps=3, lr=1e-2, batch_size=4, progress=False, **loop))
    assert moved and all(device == torch.device("cpu") for device in moved)  # every batch placed
    return {name: p.detach().clone() for name, p in parameters.items()}


def test_cpu_fp32_trains_as_the_default_and_bf16_autocasts(monkeypatch):
    default = _train_tiny(monkeypatch)
    explicit = _train_tiny(monkeypatch, device="cpu", precision="fp32")
    bf16 = _train_tiny(monkeypatch, device="cpu", precision="bf16")
    assert all(torch.equal(default[name], explicit[name]) for name in default)
    assert not all(torch.equal(default[name], bf16[name]) for name in default)  # autocast took effect


def test_train_refuses_a_missing_device_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LowresError, match="--device cuda"):
        _train_tiny(monkeypatch, device="cuda")


def test_trained_parameters_outside_the_model_follow_it_to_the_device(monkeypatch):
    from lowres_adapters.training.loop import TrainingJob
    from lowres_adapters.training.settings import LoopSettings

    model, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)  # a task head lives outside the model
    job = TrainingJob(model=model, parameters={"weight": model.weight, "head.weight": head.weight},
                      train_features=[{}], collate=None, loss_fn=None)
    moved = []  # no GPU here: record where _place sends the trained parameters
    monkeypatch.setattr(loop_module, "move_parameters_", lambda params, device: moved.extend((p, device) for p in params))
    monkeypatch.setattr(loop_module, "choose_device", lambda *args, **kwargs: torch.device("cuda", 1))
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *args, **kwargs: self)
    loop_module._place(job, LoopSettings(precision="fp32"), loop_module.current_process())
    assert any(p is head.weight and device == torch.device("cuda", 1) for p, device in moved)


def test_loaded_model_goes_to_the_requested_device(monkeypatch):
    from types import SimpleNamespace

    from lowres_adapters.loading import _placed

    loaded = SimpleNamespace(model=torch.nn.Linear(2, 2))
    assert _placed(loaded, "cpu").model.weight.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LowresError, match="--device cuda"):
        _placed(loaded, "cuda")


def test_cli_refuses_a_missing_device_before_loading_anything(monkeypatch, capsys, tmp_path):
    from cli_support import run_cli

    import lowres_adapters.cli.adapt as adapt_cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(adapt_cli, "run_adapt", lambda *a, **k: pytest.fail("the run started"))
    code, err = run_cli(["adapt", "nya", "--device", "cuda", "-o", str(tmp_path / "run")], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "--device cuda" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("loop, available, gpu_bf16, expected", [
    ({}, ["cpu"], None, None),  # the CPU keeps float32 ...
    ({"precision": "bf16"}, ["cpu"], None, None),  # ... even when it computes in bf16
    ({}, ["cuda", "cpu"], True, torch.bfloat16),  # a bf16 GPU: the base in bf16
    ({}, ["cuda", "cpu"], False, torch.float16),  # an older GPU: fp16
    ({"precision": "fp32"}, ["cuda", "cpu"], True, None),
    ({"device": "cpu"}, ["cuda", "cpu"], True, None),
    ({}, ["mps", "cpu"], None, None),  # MPS computes fp32 by default
    ({"precision": "bf16"}, ["mps", "cpu"], None, torch.bfloat16),
])
def test_base_loads_in_the_compute_dtype_only_on_a_gpu(loop, available, gpu_bf16, expected):
    from lowres_adapters.devices import base_dtype, run_placement

    fake_bf16 = None if gpu_bf16 is None else (lambda: gpu_bf16)
    device, precision = run_placement(loop, available=available, gpu_bf16=fake_bf16)
    assert base_dtype(device, precision) == expected


def test_run_placement_refuses_before_loading_in_one_line():
    from lowres_adapters.devices import run_placement

    with pytest.raises(LowresError, match="fp16 is for GPUs"):
        run_placement({"precision": "fp16"}, available=["cpu"])


def test_load_base_model_reads_the_weights_in_the_given_dtype(tmp_path):
    from training_support import save_tiny_model

    from lowres_adapters.models import load_base_model

    folder = save_tiny_model(tmp_path / "model")
    assert {p.dtype for p in load_base_model(str(folder))[0].parameters()} == {torch.float32}
    assert {p.dtype for p in load_base_model(str(folder), dtype=torch.bfloat16)[0].parameters()} == {torch.bfloat16}


def test_a_bf16_base_trains_float32_master_weights(monkeypatch):
    """A GPU run's base in bf16, simulated on the CPU: while the loop trains, the trained parameters are
    float32 (the same Parameter objects, so the optimiser updates float32); afterwards they rejoin the
    base's bf16 and the model evaluates in one dtype, also under weights_autocast."""
    from lowres_adapters.devices import low_precision_dtype, weights_autocast
    from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
    from lowres_adapters.training.lm_objectives import objective_named
    from lowres_adapters.training.loop import TrainingJob, select_parameters, train
    from lowres_adapters.training.settings import LoopSettings

    model, tokenizer = tiny_model("llama")
    model.to(torch.bfloat16)
    objective = objective_named("clm")
    features = objective.tokenize(tokenizer, list(TINY_CORPUS) * 2, 32)
    parameters = select_parameters(model, ["*q_proj*"])
    before = {name: p.detach().clone() for name, p in parameters.items()}
    job = TrainingJob(model=model, parameters=parameters, train_features=features,
                      collate=objective.collator(tokenizer), loss_fn=objective.loss)
    seen = []
    result = train(job, LoopSettings(max_steps=3, lr=1e-2, batch_size=4, progress=False, precision="bf16"),
                   callbacks=[lambda report: seen.append({p.dtype for p in parameters.values()})])
    assert seen == [{torch.float32}] * 3 and result.final_loss == result.final_loss  # float32 while training, no NaN
    named = dict(model.named_parameters())
    assert all(named[name] is p for name, p in parameters.items())
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(not torch.equal(before[name], p.detach()) for name, p in parameters.items())
    assert low_precision_dtype(model) == torch.bfloat16 and low_precision_dtype(torch.nn.Linear(2, 2)) is None
    batch = objective.collator(tokenizer)(features[:2], torch.Generator().manual_seed(0))
    with weights_autocast(model):
        assert torch.isfinite(model(input_ids=batch["input_ids"]).logits.float()).all()
    assert isinstance(weights_autocast(torch.nn.Linear(2, 2)), contextlib.nullcontext)


def test_adapt_loads_the_base_in_the_gpu_compute_dtype(tmp_path, monkeypatch, capsys):
    """The run asks for the base in bf16 when its placement is a bf16 GPU (faked: the run itself computes
    on the CPU in bf16 autocast), trains, and scores the adapted model under autocast."""
    import json

    from cli_support import run_cli
    from training_support import install_toy_registry, save_tiny_model, write_corpus

    import lowres_adapters.training.adapt as adapt_module
    from lowres_adapters import models

    install_toy_registry()
    folder = save_tiny_model(tmp_path / "model")
    train_file, held_out = write_corpus(tmp_path)
    requested = []
    monkeypatch.setattr(adapt_module, "run_placement", lambda loop, local_index=0: (torch.device("cuda", 0), "bf16"))
    monkeypatch.setattr(adapt_module, "load_base_model", lambda model_id, **kw: requested.append(kw.get("dtype"))
                        or models.load_base_model(model_id, **kw))
    run_dir = tmp_path / "run"
    code, err = run_cli(["adapt", "tum", "--model", str(folder), "--adapter", "toy", "--text", str(train_file),
                         "--eval-text", str(held_out), "--max-steps", "4", "--lr", "1e-2", "--device", "cpu",
                         "--precision", "bf16", "--output", str(run_dir)], capsys)
    assert code == 0, err
    assert requested == [torch.bfloat16] and "in bfloat16" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["base"]["bits_per_char"] > 0 and metrics["adapted"]["bits_per_char"] > 0
