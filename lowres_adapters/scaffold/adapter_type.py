"""Template of ``lowres new adapter-type NAME``: a low-rank update on chosen linear layers.

The method is a working starting point (LoRA-like, arXiv 2106.09685) for the author to replace;
its handle shows the whole contract, switching off included.
"""

from __future__ import annotations


def defaults(name: str) -> dict[str, str]:
    """Return the kind-specific placeholders."""
    return {"__LABEL__": "adapter type", "__MODULE__": "adapter", "__SPEC__": "__UPPER___TYPE",
            "__HOOK__": "register_adapter_types",
            "__DESCRIPTION__": f"The {name} adapter type for lowres-adapters",
            "__TRY__": f"lowres adapt nya --adapter {name} --max-steps 1   # one real training step"}


ADAPTER = '''"""The __NAME__ adapter type: its config, its attach function and its handle.

Importing this module does not import torch (``lowres`` lists plugins without loading torch);
the modules that need it live in ``__PKG__.modules``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from lowres_adapters.plugin import AdapterType, LowresError, ParameterSetAdapter, added_parameter_names, parameter_names


@dataclass(frozen=True)
class __CLASS__Config:
    """Settings of __NAME__; the defaults are the published setting.

    Attributes:
        rank: Width of the low-rank update.
        alpha: The update is scaled by ``alpha / rank``.
        targets: Comma-separated last names of the linear layers to adapt (Llama and BERT-style names).
    """

    rank: int = 8
    alpha: float = 16.0
    targets: str = "q_proj,v_proj,query,value"

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank must be a positive integer, got {self.rank!r}")
        if not self.targets.strip():
            raise ValueError("targets must name at least one linear layer")


class __CLASS__Adapter(ParameterSetAdapter):
    """Handle on the __NAME__ updates of one model (see lowres_adapters.plugin.AttachedAdapter)."""

    def __init__(self, model: Any, name: str, config: __CLASS__Config, trainable_names: list[str],
                 updates: list[Any]) -> None:
        super().__init__(model, name, config, trainable_names)
        self.updates = updates

    def _switch_off(self) -> Callable[[], None]:
        """Switch every update off (``with handle.disabled():`` then runs the bare base model)."""
        for update in self.updates:
            update.enabled = False

        def switch_on() -> None:
            for update in self.updates:
                update.enabled = True

        return switch_on


def attach___NAME__(model: Any, name: str, config: __CLASS__Config) -> __CLASS__Adapter:
    """Add a low-rank update to every target linear layer of ``model``; return the handle."""
    from __PKG__.modules import add_updates

    before = parameter_names(model)
    updates = add_updates(model, f"__NAME___{name}", config)
    if not updates:
        raise LowresError(f"__NAME__ found no linear layer named {config.targets} in {type(model).__name__}; "
                          "set adapter_config targets")
    return __CLASS__Adapter(model, name, config, added_parameter_names(model, before), updates)


__UPPER___TYPE = AdapterType(
    name="__NAME__",
    config_class=__CLASS__Config,
    attach=attach___NAME__,
    description="__NAME__: a low-rank update on the attention query and value layers",
)
'''

MODULES = '''"""The torch modules of __NAME__ (imported only when an adapter is attached)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LowRankUpdate(nn.Module):
    """``output + scale * up(down(input))`` on one linear layer, through a forward hook.

    ``up`` starts at zero, so a freshly attached adapter leaves the model's outputs unchanged.
    """

    def __init__(self, linear: nn.Linear, rank: int, scale: float) -> None:
        super().__init__()
        options = {"dtype": linear.weight.dtype, "device": linear.weight.device}
        self.down = nn.Linear(linear.in_features, rank, bias=False, **options)
        self.up = nn.Linear(rank, linear.out_features, bias=False, **options)
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.up.weight)
        self.scale = scale
        self.enabled = True

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> Any:
        """Add the update to ``output`` (batch, seq, out); return None (unchanged) when switched off."""
        if not self.enabled:
            return None
        return output + self.scale * self.up(self.down(inputs[0]))


def add_updates(model: nn.Module, container_name: str, config: Any) -> list[LowRankUpdate]:
    """Hook a :class:`LowRankUpdate` onto every target linear layer; keep them under ``container_name``."""
    targets = {target.strip() for target in config.targets.split(",") if target.strip()}
    container = nn.ModuleDict()
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            update = LowRankUpdate(module, config.rank, config.alpha / config.rank)
            module.register_forward_hook(update.hook)
            container[name.replace(".", "__")] = update
    if len(container):
        model.add_module(container_name, container)
    return list(container.values())
'''

TESTS = '''"""__NAME__ passes lowres-adapters' conformance kit on tiny CPU models (no download)."""

import pytest

from lowres_adapters.plugin import check_adapter_type

from __PKG__.adapter import __CLASS__Config, __UPPER___TYPE


def test___NAME___conforms():
    report = check_adapter_type(__UPPER___TYPE)
    assert report.disables == {"llama": True, "xlmr": True}  # prompt-align can use it


def test_a_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank"):
        __CLASS__Config(rank=0)
'''

FILES = {
    "__PKG__/adapter.py": ADAPTER,
    "__PKG__/modules.py": MODULES,
    "tests/test___NAME__.py": TESTS,
}
