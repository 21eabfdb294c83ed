"""Native copies of an adapter for users of PEFT and of AdapterHub's ``adapters`` library.

``publish`` puts, next to the library's own artifact:

- PEFT's files at the repo root (``adapter_config.json``, ``adapter_model.safetensors``), so
  ``PeftModel.from_pretrained(base, "owner/name")`` and ``AutoPeftModelForCausalLM.from_pretrained(
  "owner/name")`` load it: for PEFT adapter types (the ``lowres-adapter-peft`` plugin) their own
  files, and for AdapterHub's LoRA an export into PEFT's key layout (:func:`adapterhub_lora_to_peft`).
  ``base_model_name_or_path`` is the base model's real id, never a local cache folder.
- AdapterHub's files under ``adapterhub/`` for types from ``adapters`` (``model.load_adapter``),
  with ``model_name`` set to the base model's id.

A run that extended the vocabulary or trained base tensors (``--train-also``) gets no native copy:
neither library can carry those tensors, and a copy without them would silently be another model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from safetensors.torch import save

from lowres_adapters.io import atomic_write_text
from lowres_adapters.models import is_embedded, objective_facts

if TYPE_CHECKING:  # artifact.py imports this module to write the native folder
    from lowres_adapters.artifact import ArtifactMetadata

NATIVE_DIR = "adapterhub"
"""Sub-folder of a run folder holding AdapterHub's own files."""

PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
"""What ``PeftModel`` puts before the base model's own parameter names."""
_LORA_SUFFIXES = (".lora_A", ".lora_B")
_FUSED_PROJECTIONS = ("c_attn", "qkv_proj", "query_key_value", "Wqkv", "qkv")
"""Fused attention projections (GPT-2, Phi-3, Falcon, ...): their LoRA is not exported to PEFT."""


def native_library(directory: Path) -> str | None:
    """Return ``"peft"`` or ``"adapters"`` for the library whose files a run folder's ``adapterhub/`` holds."""
    config = Path(directory) / NATIVE_DIR / PEFT_CONFIG_FILE
    if not config.is_file():
        return None
    try:
        values = json.loads(config.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return "peft" if isinstance(values, dict) and "peft_type" in values else "adapters"


def has_only_adapter_tensors(metadata: ArtifactMetadata, tensors: Mapping[str, Any]) -> bool:
    """Return True when the artifact is just the adapter (no new vocabulary rows, no trained base tensors)."""
    return not metadata.vocabulary and not any(key.startswith("lowres.") for key in tensors)


def adapterhub_lora_to_peft(tensors: Mapping[str, Any], metadata: ArtifactMetadata) -> tuple[dict, dict] | None:
    """Return ``(PEFT adapter_config, PEFT tensors)`` for an AdapterHub LoRA, or None when PEFT cannot express it.

    AdapterHub keeps ``<module>.loras.<name>.lora_A`` (r, in) and ``lora_B`` (out, r) and adds
    ``B A x * alpha / r``; PEFT's LoRA adds the same with ``<module>.lora_A.weight`` and
    ``lora_B.weight`` under ``base_model.model.``. Gating, DoRA, other composition modes and
    non-zero dropout at inference have no PEFT equivalent here, so they give None.
    """
    config = metadata.adapter_config
    if metadata.adapter_type != "lora" or config.get("use_gating") or config.get("composition_mode", "add") != "add":
        return None
    marker = f".loras.{metadata.adapter_name}"
    converted, modules = {}, []
    for key, tensor in tensors.items():
        module, _, suffix = key.rpartition(marker)
        if not module or f".{suffix.lstrip('.')}" not in _LORA_SUFFIXES:
            return None
        converted[f"{PEFT_PREFIX}{module}.{suffix.lstrip('.')}.weight"] = tensor
        modules.append(module)
    if not converted or any(module.rsplit(".", 1)[-1] in _FUSED_PROJECTIONS for module in modules):
        return None  # AdapterHub splits a fused q/k/v projection's LoRA its own way: no PEFT equivalent
    peft_config = {
        "peft_type": "LORA", "task_type": None if objective_facts(metadata.objective).masked else "CAUSAL_LM",
        "r": int(config.get("r", 8)), "lora_alpha": int(config.get("alpha", 8)), "lora_dropout": 0.0,
        "target_modules": sorted(set(modules)), "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "modules_to_save": None,
    }
    return peft_config, converted


def peft_files(directory: Path, metadata: ArtifactMetadata, tensors: Mapping[str, Any]) -> dict[str, bytes]:
    """Return PEFT's root files for ``publish`` (empty when PEFT cannot load this adapter)."""
    if not has_only_adapter_tensors(metadata, tensors):
        return {}
    native = Path(directory) / NATIVE_DIR
    if native_library(directory) == "peft" and (native / PEFT_WEIGHTS_FILE).is_file():
        values = json.loads((native / PEFT_CONFIG_FILE).read_text("utf-8"))
        weights = (native / PEFT_WEIGHTS_FILE).read_bytes()
    else:
        converted = adapterhub_lora_to_peft(tensors, metadata)
        if converted is None:
            return {}
        values, peft_tensors = converted
        weights = save({key: value.contiguous() for key, value in peft_tensors.items()}, metadata={"format": "pt"})
    values = {**values, "base_model_name_or_path": metadata.base_model, "revision": _hub_revision(metadata)}
    return {PEFT_CONFIG_FILE: (json.dumps(values, indent=2, sort_keys=True) + "\n").encode("utf-8"),
            PEFT_WEIGHTS_FILE: weights}


def adapterhub_config(content: bytes, metadata: ArtifactMetadata) -> bytes:
    """Return AdapterHub's ``adapter_config.json`` with ``model_name`` set to the base model's id."""
    try:
        values = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return content
    if isinstance(values, dict) and "model_name" in values:
        values["model_name"] = metadata.base_model
    return (json.dumps(values, indent=2, sort_keys=True) + "\n").encode("utf-8")


def name_the_base(native_dir: Path, metadata: ArtifactMetadata) -> None:
    """Rewrite the native ``adapter_config.json`` of a run folder to name the base by its real id.

    Both libraries record ``model.config._name_or_path``, which for the embedded default is a cache
    folder; PEFT's ``AutoPeftModelForCausalLM`` would look for the base there.
    """
    path = Path(native_dir) / PEFT_CONFIG_FILE
    if not path.is_file():
        return
    if native_library(Path(native_dir).parent) == "peft":
        values = json.loads(path.read_text("utf-8"))
        values.update(base_model_name_or_path=metadata.base_model, revision=_hub_revision(metadata))
        atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")
    else:
        atomic_write_text(path, adapterhub_config(path.read_bytes(), metadata).decode("utf-8"))


def _hub_revision(metadata: ArtifactMetadata) -> str | None:
    """Return the base's revision when it is a Hub revision (the embedded default's is a package name)."""
    return None if is_embedded(metadata.base_model) else metadata.base_model_revision
