"""The project's own soft prompt (``prompt_tuning``): trainable vectors prepended to the input embeddings.

Works on encoders and decoders alike, with masked-LM and causal-LM labels. AdapterHub's
``prompt_tuning`` refuses Llama models and, with masked-LM labels, crashes because the prompt
lengthens the logits. Here the forward takes the normal ``input_ids / attention_mask / labels`` and
returns logits and hidden states aligned with the input: the prompt positions are stripped from
the outputs before the loss is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.handles import ParameterSetAdapter
from lowres_adapters.specs import AdapterType

PROMPT_PARAMETER = "soft_prompt"


@dataclass(frozen=True)
class PromptTuningConfig:
    """Soft prompt settings.

    Attributes:
        num_tokens: Number of trainable prompt vectors (10 at hidden 768 = 7,680 parameters).
        init: ``"vocab"`` copies the embeddings of randomly drawn vocabulary tokens (a good
            start for training); ``"random"`` draws from a normal with the embeddings' std.
        seed: Seed for drawing the initial tokens or values.
    """

    num_tokens: int = 10
    init: str = "vocab"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.num_tokens, bool) or not isinstance(self.num_tokens, int) or self.num_tokens <= 0:
            raise ValueError(f"PromptTuningConfig.num_tokens must be a positive integer, got {self.num_tokens!r}")
        if self.init not in ("vocab", "random"):
            raise ValueError(f"PromptTuningConfig.init must be 'vocab' or 'random', got {self.init!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PromptTuningConfig.seed must be an integer, got {self.seed!r}")


class SoftPromptAdapter(ParameterSetAdapter):
    """Handle on a :class:`~lowres_adapters.builtin.soft_prompt_model.SoftPromptModel`.

    Only ``soft_prompt`` trains; there are no native files (AdapterHub cannot load this prompt).
    Switched off, the wrapper passes inputs straight to the wrapped model.
    """

    def _switch_off(self) -> Any:
        """Stop prepending the prompt; the returned function starts again."""
        self.model.prompt_enabled = False

        def switch_on() -> None:
            self.model.prompt_enabled = True

        return switch_on


def attach_soft_prompt(model: Any, name: str, config: PromptTuningConfig) -> SoftPromptAdapter:
    """Wrap ``model`` with a soft prompt; the handle's ``model`` is the wrapper to call.

    Attach other adapter types to ``model`` first: the wrapper is not a transformers model.
    The wrapper's only new parameter is ``soft_prompt``, (num_tokens, hidden).
    """
    # lazy: builtin.soft_prompt_model imports torch
    from lowres_adapters.builtin.soft_prompt_model import SoftPromptModel, initial_prompt

    if isinstance(model, SoftPromptModel):
        raise LowresError("the model already has a soft prompt; attach one prompt_tuning adapter per model")
    if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
        raise LowresError(f"prompt_tuning needs a transformers model, got {type(model).__name__}")
    wrapper = SoftPromptModel(model, initial_prompt(model, config))
    wrapper.train(model.training)
    return SoftPromptAdapter(wrapper, name, config, [PROMPT_PARAMETER])


PROMPT_TUNING = AdapterType(
    name="prompt_tuning",
    config_class=PromptTuningConfig,
    attach=attach_soft_prompt,
    description="Soft prompt of 10 trainable vectors before the input; encoders and decoders, MLM and CLM",
)
