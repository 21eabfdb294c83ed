"""Write a run folder (= artifact folder): adapter, metadata, metrics, settings, model card.

See docs/architecture.md ("Run folder"). ``train_log.jsonl`` and ``checkpoints/`` are written by
the loop; everything here is written through a temporary name and a rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from lowres_adapters.artifact import METRICS_FILE, ArtifactMetadata, atomic_write_text, write_artifact
from lowres_adapters.configs import config_to_dict

RUN_CONFIG_FILE = "run_config.json"
CARD_FILE = "README.md"
BASE_TENSOR_PREFIX = "lowres.base."
"""Key prefix of base-model tensors trained through ``train_also`` in ``adapter.safetensors``."""


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def build_metadata(*, handle: Any, adapter_type: str, model_id: str, objective: str, language: str, script: str,
                   recipe: str, recipe_settings: Mapping[str, Any], metrics: Mapping[str, Any],
                   datasets: list[str], vocabulary: Mapping[str, int] | None = None) -> ArtifactMetadata:
    """Return the artifact metadata of a trained adapter."""
    from lowres_adapters.models import model_revision
    from lowres_adapters.registry import get_registry

    provider = get_registry().provider("adapter_types", adapter_type)
    return ArtifactMetadata(
        adapter_type=adapter_type, adapter_name=handle.name, adapter_config=config_to_dict(handle.config),
        plugin=provider.requirement, base_model=model_id, base_model_revision=model_revision(model_id),
        objective=objective, language=language, script=script, recipe=recipe,
        recipe_settings=dict(recipe_settings), metrics=dict(metrics), datasets=list(datasets),
        vocabulary=dict(vocabulary) if vocabulary else None,
    )


def write_run_folder(directory: Path, *, handle: Any, metadata: ArtifactMetadata, metrics: Mapping[str, Any],
                     run_config: Mapping[str, Any], extra_tensors: Mapping[str, Any] | None = None,
                     base_parameters: Mapping[str, Any] | None = None, tokenizer: Any = None) -> None:
    """Write the artifact, ``metrics.json``, ``run_config.json`` and the model card into ``directory``.

    Args:
        directory: The run (or stage) folder.
        handle: The trained adapter.
        metadata: ``lowres_adapter.json`` contents.
        metrics: ``{"base": {...}, "adapted": {...}, ...}``.
        run_config: The resolved settings.
        extra_tensors: More tensors for ``adapter.safetensors`` (e.g. new embedding rows).
        base_parameters: Base-model parameters trained through ``train_also``, saved under
            ``lowres.base.<name>``.
        tokenizer: An extended tokenizer to save (only when the vocabulary was extended).
    """
    directory = Path(directory)
    tensors = dict(extra_tensors or {})
    for name, parameter in (base_parameters or {}).items():
        tensors[BASE_TENSOR_PREFIX + name] = parameter.detach()
    write_artifact(directory, handle, metadata, extra_tensors=tensors, tokenizer=tokenizer)
    write_json(directory / METRICS_FILE, dict(metrics))
    write_json(directory / RUN_CONFIG_FILE, dict(run_config))
    atomic_write_text(directory / CARD_FILE, render_card(metadata, directory))


def render_card(metadata: ArtifactMetadata, directory: Path) -> str:
    """Return the model card (from :mod:`lowres_adapters.model_card`, or a short fallback)."""
    try:
        from lowres_adapters.model_card import render_model_card
    except ImportError:  # pragma: no cover - the card module ships with the library
        return f"# {metadata.language} {metadata.adapter_type} adapter\n\nBase model: {metadata.base_model}\n"
    return render_model_card(metadata, directory=directory)


def merge_logs(stage_dirs: Mapping[str, Path], target: Path) -> None:
    """Write ``target`` (the top-level ``train_log.jsonl``) as the stage logs one after another,
    each record tagged with its stage."""
    lines = []
    for stage, folder in stage_dirs.items():
        log = Path(folder) / "train_log.jsonl"
        if not log.exists():
            continue
        for line in log.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            record.setdefault("stage", stage)
            lines.append(json.dumps(record))
    atomic_write_text(target, "".join(line + "\n" for line in lines))
