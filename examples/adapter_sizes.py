"""Measure every installed adapter type on a model: trainable parameters and saved adapter size.

    OMP_NUM_THREADS=1 python examples/adapter_sizes.py                      # SmolLM2-135M (the default)
    python examples/adapter_sizes.py --model tiny:llama --types seq_bn,lora  # a tiny random model

Each type is attached to a fresh copy of the model, activated, run forward and backward once on
two sentences, and written as a run folder; the table gives ``adapter.safetensors`` in bytes
(about 4 bytes per trainable parameter, plus a small header).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from lowres_adapters import get_registry
from lowres_adapters.artifact import WEIGHTS_FILE, ArtifactMetadata, write_artifact
from lowres_adapters.configs import config_to_dict

SENTENCES = ["Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi.", "Mulungu ndiye kuwala."]


def load(model_id: str) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)``: ``tiny:<kind>`` for a tiny random model, else a real model id."""
    if model_id.startswith("tiny:"):
        from lowres_adapters.testing.tiny import tiny_model

        return tiny_model(model_id.split(":", 1)[1])
    from lowres_adapters.models import load_base_model

    return load_base_model(model_id)


def measure(model_id: str, type_names: list[str]) -> list[dict[str, Any]]:
    """Return one row per adapter type: ``{"type", "trainable", "bytes", "loss"}``."""
    registry = get_registry()
    rows = []
    for type_name in type_names:
        model, tokenizer = load(model_id)
        spec = registry.adapter_type(type_name)
        handle = spec.attach(model, "lang", spec.config_class())
        handle.activate()
        encoded = tokenizer(SENTENCES, return_tensors="pt", padding=True)
        labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        outputs = handle.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"], labels=labels)
        outputs.loss.backward()
        with tempfile.TemporaryDirectory() as folder:
            metadata = ArtifactMetadata(adapter_type=type_name, adapter_name=handle.name, plugin=None,
                                        adapter_config=config_to_dict(handle.config), base_model=model_id)
            write_artifact(Path(folder), handle, metadata)
            size = (Path(folder) / WEIGHTS_FILE).stat().st_size
        rows.append({"type": type_name, "trainable": sum(p.numel() for p in handle.trainable_parameters().values()),
                     "bytes": size, "loss": round(outputs.loss.item(), 4)})
    return rows


def main() -> None:
    """Print the table for the chosen model and types."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--types", default="", help="comma-separated type names (default: all installed)")
    args = parser.parse_args()
    names = [n for n in args.types.split(",") if n] or get_registry().names("adapter_types")
    print(f"{'type':<15} {'trainable':>12} {'adapter.safetensors':>20} {'loss':>8}")
    for row in measure(args.model, names):
        print(f"{row['type']:<15} {row['trainable']:>12,} {row['bytes']:>20,} {row['loss']:>8}")


if __name__ == "__main__":
    main()
