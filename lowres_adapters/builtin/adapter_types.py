"""Built-in adapter types, registered through the same hook as any third-party plugin.

Registers the AdapterHub-backed types (``seq_bn``, ``double_seq_bn``, ``seq_bn_inv``, ``lora``,
``ia3``, ``prefix_tuning``), the project's own soft prompt (``prompt_tuning``) and full
fine-tuning (``full``). Importing this module does not import torch or ``adapters``.
"""

from __future__ import annotations

from typing import Callable

from lowres_adapters.builtin.adapterhub_types import ADAPTERHUB_TYPES
from lowres_adapters.builtin.full_finetune import FULL
from lowres_adapters.builtin.soft_prompt import PROMPT_TUNING
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import AdapterType

BUILTIN_ADAPTER_TYPES: tuple[AdapterType, ...] = (*ADAPTERHUB_TYPES, PROMPT_TUNING, FULL)


@hookimpl
def register_adapter_types(register: Callable[[AdapterType], None]) -> None:
    """Register the built-in adapter types."""
    for spec in BUILTIN_ADAPTER_TYPES:
        register(spec)
