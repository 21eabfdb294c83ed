"""The plugin module named by the ``lowres_adapters`` entry point: registers the PEFT adapter types."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import AdapterType, hookimpl

from lowres_adapter_peft.configs import PeftIa3Config, PeftLohaConfig, PeftLokrConfig, PeftLoraConfig, PeftVeraConfig
from lowres_adapter_peft.handle import attach_peft

PEFT_ADAPTER_TYPES = (
    AdapterType("peft_lora", PeftLoraConfig, attach_peft, "PEFT LoRA (r=8, alpha=8) on attention query and value"),
    AdapterType("peft_ia3", PeftIa3Config, attach_peft, "PEFT (IA)^3 scaling of keys, values and feed-forward"),
    AdapterType("peft_vera", PeftVeraConfig, attach_peft,
                "PEFT VeRA: shared frozen random projections (r=256), trained scaling vectors"),
    AdapterType("peft_loha", PeftLohaConfig, attach_peft, "PEFT LoHa: low-rank Hadamard-product updates (r=8)"),
    AdapterType("peft_lokr", PeftLokrConfig, attach_peft, "PEFT LoKr: low-rank Kronecker-product updates (r=8)"),
)


@hookimpl
def register_adapter_types(register: Callable[[AdapterType], None]) -> None:
    """Register the PEFT adapter types."""
    for spec in PEFT_ADAPTER_TYPES:
        register(spec)
