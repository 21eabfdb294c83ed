"""Write your own adapter type: LayerNorm tuning (train only the normalisation weights).

This file is laid out like the plugin module of a pip package (``lowres-adapter-lntuning``): a
frozen config, an ``attach`` function returning a handle, and one ``@hookimpl``. A package ships
it with an entry point::

    [project.entry-points.lowres_adapters]
    lntuning = "lowres_adapter_lntuning.plugin"

Run it: ``python examples/custom_adapter_type.py``. It registers the type into the running
registry with ``Registry.add_plugin`` (no install needed) and runs the conformance check that a
plugin's own test suite would run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

from lowres_adapters import get_registry, hookimpl
from lowres_adapters.handles import ParameterSetAdapter
from lowres_adapters.specs import AdapterType
from lowres_adapters.testing.conformance import check_adapter_type

LAYER_PATTERN = re.compile(r"\.layers?\.\d+\.")
"""Matches module names inside a numbered transformer layer (``model.layers.3.``, ``encoder.layer.3.``)."""


@dataclass(frozen=True)
class LnTuningConfig:
    """LayerNorm tuning settings.

    Attributes:
        outside_layers: Also train the norms outside the transformer layers (embedding, final
            and LM-head norms).
    """

    outside_layers: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.outside_layers, bool):
            raise ValueError(f"outside_layers must be true or false, got {self.outside_layers!r}")


def _norm_parameter_names(model: Any, outside_layers: bool) -> list[str]:
    """Return the parameter names of the normalisation modules (LayerNorm, RMSNorm, ...)."""
    names = []
    for module_name, module in model.named_modules():
        if "norm" not in type(module).__name__.lower():
            continue
        if not outside_layers and not LAYER_PATTERN.search(module_name):
            continue
        names += [f"{module_name}.{name}" for name, _ in module.named_parameters(recurse=False)]
    return names


def attach_ln_tuning(model: Any, name: str, config: LnTuningConfig) -> ParameterSetAdapter:
    """Return a handle training the model's own normalisation weights (nothing is added)."""
    return ParameterSetAdapter(model, name, config, _norm_parameter_names(model, config.outside_layers))


LN_TUNING = AdapterType(name="ln_tuning", config_class=LnTuningConfig, attach=attach_ln_tuning,
                        description="LayerNorm tuning: only the normalisation weights train")


@hookimpl
def register_adapter_types(register: Callable[[AdapterType], None]) -> None:
    """Register the example's adapter type."""
    register(LN_TUNING)


def main() -> dict[str, int]:
    """Register the type from this module, check it, and return its trainable counts per tiny model."""
    registry = get_registry()
    if "ln_tuning" not in registry.names("adapter_types"):
        registry.add_plugin(sys.modules[__name__], name="custom_adapter_type_example")
    report = check_adapter_type("ln_tuning", kinds=("llama", "xlmr"))
    for check in report.passed:
        print(f"ok  {check}")
    print(f"trainable parameters: {report.trainable}")
    return report.trainable


if __name__ == "__main__":
    main()
