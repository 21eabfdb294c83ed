"""Build tiny run folders for evaluation tests: a saved tiny base model and an adapter artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lowres_adapters.artifact import ArtifactMetadata, write_artifact
from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import tiny_model


def save_tiny_base(directory: Path, kind: str = "llama") -> Path:
    """Save a tiny model and its tokenizer to ``directory`` (usable as a base model id)."""
    model, tokenizer = tiny_model(kind)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def write_tiny_run(run_dir: Path, base_dir: Path, *, adapter_type: str = "lora", seed: int = 1,
                   scale: float = 0.05, recipe: str = "language", language: str = "nya",
                   init_from: Path | None = None, metrics: dict[str, Any] | None = None) -> Path:
    """Attach an adapter to the tiny base, give it random weights and write a run folder."""
    from lowres_adapters.artifact import attach_from_artifact
    from lowres_adapters.models import load_base_model

    model, _ = load_base_model(str(base_dir))
    spec = get_registry().adapter_type(adapter_type)
    if init_from is not None:
        handle = attach_from_artifact(model, init_from)
    else:
        handle = spec.attach(model, "nya", spec.config_class())
        handle.activate()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    metadata = ArtifactMetadata(adapter_type=adapter_type, adapter_name=handle.name, adapter_config={},
                                plugin=None, base_model=str(base_dir), objective="clm", language=language,
                                script="Latn", recipe=recipe, metrics=metrics or {})
    write_artifact(run_dir, handle, metadata, native=False)
    return run_dir


def write_train_log(run_dir: Path, steps: int = 20) -> None:
    """Write a plausible train_log.jsonl (training loss every step, evaluation every 5)."""
    lines = []
    for step in range(1, steps + 1):
        lines.append({"step": step, "loss": 4.0 / step ** 0.3, "lr": 1e-3, "tokens": 128 * step})
        if step % 5 == 0:
            lines.append({"step": step, "eval_loss": 4.2 / step ** 0.25, "eval_bits_per_char": 3.5 / step ** 0.1})
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
