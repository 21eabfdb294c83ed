"""Checkpoints as effective weights: a base model, or a run folder with its adapter folded in.

A LoRA-style adapter is merged into the weights it adapts, so its effect shows up as a change of
those weights. Adapters that add modules (bottlenecks, soft prompts) cannot be merged: the base
weights stay as they were and the adapter's own tensors carry the change (see
:func:`~lowres_adapters.evaluation.layers.adapter_layer_norms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lowres_adapters.artifact import BASE_TENSOR_PREFIX, METADATA_FILE, ArtifactMetadata, read_metadata, read_tensors
from lowres_adapters.errors import LowresError
from lowres_adapters.loading import load_folder
from lowres_adapters.models import load_base_model

_WRAPPER_PREFIXES = ("base_model.model.",)


@dataclass
class Snapshot:
    """One checkpoint, ready to compare.

    Attributes:
        label: What it is (model id or folder), for reports.
        model: Module to call for hidden states (adapter active, merged when possible).
        tokenizer: Its tokenizer.
        weights: Effective weights of the base architecture, by parameter name (float32, CPU).
        adapter_tensors: The adapter's own tensors (empty for a base model).
        merged: True when the adapter was folded into ``weights``; None for a base model.
        trains_base_weights: True for full fine-tuning: ``weights`` are the trained weights themselves.
        metadata: The run folder's metadata (None for a base model).
    """

    label: str
    model: Any
    tokenizer: Any
    weights: dict[str, Any]
    adapter_tensors: dict[str, Any] = field(default_factory=dict)
    merged: bool | None = None
    trains_base_weights: bool = False
    metadata: ArtifactMetadata | None = None


def is_run_folder(path: str | Path) -> bool:
    """Return True when ``path`` is a folder holding ``lowres_adapter.json``."""
    return (Path(path) / METADATA_FILE).is_file()


def _strip_wrapper_prefix(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def effective_weights(module: Any, exclude: set[str] = frozenset()) -> dict[str, Any]:
    """Return detached float32 CPU copies of ``module``'s parameters, minus ``exclude`` (adapter-only names)."""
    return {_strip_wrapper_prefix(name): parameter.detach().float().cpu().clone()
            for name, parameter in module.named_parameters() if name not in exclude}


def merge_into_weights(handle: Any) -> tuple[Any, bool]:
    """Fold the adapter into the weights it adapts, when its library can; return ``(module, merged)``.

    ``adapters`` models merge LoRA/(IA)^3 in place (``merge_adapter``); PEFT models through
    ``merge_and_unload``. Other adapter kinds (bottlenecks, prompts) are left as they are.
    """
    model = handle.model
    if hasattr(model, "merge_and_unload"):
        try:
            return model.merge_and_unload(), True
        except (ValueError, NotImplementedError, AttributeError, TypeError):
            return model, False
    foldable = any(".loras." in name for name in handle.trainable_parameters())  # LoRA, (IA)^3
    if foldable and hasattr(model, "merge_adapter"):
        try:
            model.merge_adapter(handle.name)
            return model, True
        except (ValueError, NotImplementedError, AttributeError, TypeError, KeyError):
            return model, False
    return model, False


def load_run(directory: str | Path, *, model: str | None = None) -> Any:
    """Load a run folder onto its base model (:func:`~lowres_adapters.loading.load_folder`).

    Also puts back base-model tensors the run trained besides the adapter (``lowres.base.*``),
    when the loader has not done so itself.
    """
    loaded = load_folder(directory, model=model, task_head=False)  # a task run: its language model
    trained_base = {name[len(BASE_TENSOR_PREFIX):]: tensor for name, tensor in read_tensors(Path(directory)).items()
                    if name.startswith(BASE_TENSOR_PREFIX)}
    if trained_base:
        parameters = {_strip_wrapper_prefix(name): parameter for name, parameter in loaded.model.named_parameters()}
        missing = sorted(set(trained_base) - set(parameters))
        if missing:
            raise LowresError(f"{directory}: trained base tensors not in the model: {missing[:3]}")
        with torch.no_grad():
            for name, tensor in trained_base.items():
                parameters[name].copy_(tensor.to(parameters[name].dtype))
    return loaded


def load_snapshot(source: str | Path, *, model: str | None = None, objective: str | None = None) -> Snapshot:
    """Load a run folder (adapter merged when possible) or a base model id/folder as a :class:`Snapshot`.

    Args:
        source: A run folder, or a base model id or folder.
        model: For a run folder: base model to use instead of the recorded one.
        objective: For a base model: ``"clm"`` or ``"mlm"`` (chosen from the architecture when None).
    """
    if is_run_folder(source):
        loaded = load_run(source, model=model)
        full = bool(getattr(loaded.handle, "trains_base_weights", False))
        if full:  # full fine-tuning: no adapter modules, the weights themselves trained
            adapter_tensors, adapter_names = {}, set()
        else:
            adapter_tensors = {name: tensor.detach().float().cpu().clone()
                               for name, tensor in loaded.handle.adapter_state_dict().items()}
            adapter_names = set(loaded.handle.trainable_parameters())
        module, merged = merge_into_weights(loaded.handle)
        module.eval()
        weights = effective_weights(module, exclude=adapter_names)
        return Snapshot(label=str(source), model=module, tokenizer=loaded.tokenizer, weights=weights,
                        adapter_tensors=adapter_tensors, merged=merged, trains_base_weights=full,
                        metadata=loaded.metadata)
    if Path(source).exists() and not (Path(source) / "config.json").exists():
        raise LowresError(f"{source}: neither a run folder (no {METADATA_FILE}) nor a model folder")
    base, tokenizer = load_base_model(str(source), objective)
    return Snapshot(label=str(source), model=base, tokenizer=tokenizer, weights=effective_weights(base))


def base_of(run_folder: str | Path) -> tuple[str, str]:
    """Return ``(base model id, objective)`` recorded in a run folder."""
    metadata = read_metadata(Path(run_folder))
    return metadata.base_model, metadata.objective
