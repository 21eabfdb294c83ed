"""Attach a PEFT method to a transformers model and expose it as a lowres-adapters handle."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lowres_adapters.plugin import LowresError, ParameterSetAdapter

from lowres_adapter_peft.configs import PeftIa3Config

# Attention projection names by architecture family: (query, key, value, feed-forward down-projection).
MODULE_FAMILIES = (
    ("q_proj", "k_proj", "v_proj", "down_proj"),  # Llama, Qwen2, Mistral, ...
    ("query", "key", "value", "output.dense"),  # BERT, XLM-R, ...
)
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _family(model: Any) -> tuple[str, str, str, str]:
    """Return the projection names used by ``model``, found by module name."""
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for family in MODULE_FAMILIES:
        if family[0] in leaf_names and family[2] in leaf_names:
            return family
    raise LowresError(f"cannot find attention projections in {type(model).__name__}: set target_modules")


def default_targets(model: Any, config: Any) -> tuple[list[str], list[str]]:
    """Return ``(target_modules, feedforward_modules)`` for ``config`` on ``model``."""
    if isinstance(config, PeftIa3Config):
        if config.target_modules:
            return list(config.target_modules), list(config.feedforward_modules)
        _, key, value, down = _family(model)
        return [key, value, down], [down]
    if config.target_modules:
        return list(config.target_modules), []
    query, _, value, _ = _family(model)
    return [query, value], []


class PeftAdapter(ParameterSetAdapter):
    """Handle on one PEFT adapter inside a ``peft.PeftModel`` (the handle's ``model``)."""

    def _select(self) -> None:
        self.model.set_adapter(self.name)

    def disabled(self) -> Any:
        """Run the block with every PEFT adapter off (PEFT's own ``disable_adapter``)."""
        return self.model.disable_adapter()

    def save_native(self, directory: Path) -> list[str]:
        """Write PEFT's own files so ``PeftModel.from_pretrained(base_model, directory)`` loads them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".peft-", dir=directory))
        try:
            self.model.save_pretrained(str(staging), selected_adapters=[self.name], safe_serialization=True)
            source = staging if self.name == "default" else staging / self.name
            for name in PEFT_FILES:
                os.replace(source / name, directory / name)
            return list(PEFT_FILES)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def attach_peft(model: Any, name: str, config: Any) -> PeftAdapter:
    """Add a PEFT adapter named ``name``; wrap ``model`` in a ``PeftModel`` unless it already is one.

    Args:
        model: A transformers model (causal or masked LM), or a ``PeftModel`` to add to.
        name: Adapter name inside the model.
        config: One of the configs of :mod:`lowres_adapter_peft.configs`.
    """
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    targets, feedforward = default_targets(base, config)
    peft_config = config.to_peft(targets, feedforward) if isinstance(config, PeftIa3Config) else config.to_peft(targets)
    before = {id(parameter) for parameter in model.parameters()}
    try:
        if isinstance(model, PeftModel):
            if name in model.peft_config:
                raise LowresError(f"the model already has a PEFT adapter named {name!r}")
            model.add_adapter(name, peft_config)
            wrapped = model
        else:
            wrapped = PeftModel(model, peft_config, adapter_name=name)
    except ValueError as error:
        raise LowresError(f"peft cannot add {name!r} to {type(base).__name__}: {error}") from None
    added = [n for n, parameter in wrapped.named_parameters() if id(parameter) not in before]
    return PeftAdapter(wrapped, name, config, added)
