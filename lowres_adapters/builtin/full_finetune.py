"""Type ``full``: train every weight of the model (the full fine-tuning baseline of arXiv 2502.10140).

Behind the same handle interface as the adapters, so every recipe can run it for comparison. Its
"adapter" state is the whole model: a tied output matrix is the same tensor as the input
embeddings and is listed (and saved) once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.handles import ParameterSetAdapter
from lowres_adapters.specs import AdapterType


@dataclass(frozen=True)
class FullFinetuneConfig:
    """Full fine-tuning settings.

    Attributes:
        freeze_embeddings: Keep the input embeddings (and a tied output matrix) frozen and
            train every other weight.
    """

    freeze_embeddings: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.freeze_embeddings, bool):
            raise ValueError(
                f"FullFinetuneConfig.freeze_embeddings must be true or false, got {self.freeze_embeddings!r}"
            )


class FullFinetune(ParameterSetAdapter):
    """Handle training every weight of ``model``; no native files.

    ``trains_base_weights``: what it trains are the model's own weights, not added modules, so
    the layer-wise analysis compares them as base weights.
    """

    trains_base_weights = True


def attach_full(model: Any, name: str, config: FullFinetuneConfig) -> FullFinetune:
    """Return a handle that trains all of ``model`` (or all but its embeddings)."""
    if not hasattr(model, "named_parameters"):
        raise LowresError(f"full fine-tuning needs a torch model, got {type(model).__name__}")
    frozen: set[int] = set()
    if config.freeze_embeddings:
        frozen.add(id(model.get_input_embeddings().weight))
    names = [n for n, p in model.named_parameters() if id(p) not in frozen]
    return FullFinetune(model, name, config, names)


FULL = AdapterType(
    name="full",
    config_class=FullFinetuneConfig,
    attach=attach_full,
    description="Full fine-tuning: every weight trains (the baseline adapters are compared with)",
)
