"""The soft-prompt wrapper module behind the ``prompt_tuning`` adapter type (imports torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers.loss.loss_utils import ForCausalLMLoss, ForMaskedLMLoss

from lowres_adapters.errors import LowresError
from lowres_adapters.models import is_encoder

if TYPE_CHECKING:  # soft_prompt imports this module when a prompt is attached
    from lowres_adapters.builtin.soft_prompt import PromptTuningConfig

SEQUENCE_OUTPUTS = ("logits", "last_hidden_state", "prediction_logits")


def _is_causal(model: nn.Module) -> bool:
    return not is_encoder(model.config)


class SoftPromptModel(nn.Module):
    """A transformers model with ``num_tokens`` trainable vectors in front of every input.

    ``forward`` and ``generate`` take the same arguments as the wrapped model; outputs are aligned
    with the input (prompt positions removed). Other attributes (``config``, ``device``,
    ``get_input_embeddings``, ...) are those of the wrapped model.

    Args:
        model: The transformers model to wrap (with or without other adapters attached).
        prompt: (num_tokens, hidden) initial prompt vectors.
    """

    def __init__(self, model: nn.Module, prompt: torch.Tensor) -> None:
        super().__init__()
        self.wrapped_model = model
        self.soft_prompt = nn.Parameter(prompt)
        self.causal = _is_causal(model)
        self.prompt_enabled = True

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "wrapped_model":
                raise
            return getattr(self._modules["wrapped_model"], name)

    @property
    def num_tokens(self) -> int:
        """Return the number of prompt positions."""
        return self.soft_prompt.shape[0]

    def _prepend(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
                 attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return input embeddings and attention mask with the prompt in front."""
        if attention_mask is not None and attention_mask.dim() != 2:
            raise LowresError("prompt_tuning needs a (batch, seq) attention mask: turn packing off")
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids or inputs_embeds")
            inputs_embeds = self.wrapped_model.get_input_embeddings()(input_ids)  # (batch, seq, hidden)
        batch, length = inputs_embeds.shape[:2]
        prompt = self.soft_prompt.to(inputs_embeds.dtype).unsqueeze(0).expand(batch, -1, -1)  # (batch, n, hidden)
        embeds = torch.cat([prompt, inputs_embeds], dim=1)  # (batch, n + seq, hidden)
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=embeds.device)
        prompt_mask = attention_mask.new_ones(batch, self.num_tokens)
        return embeds, torch.cat([prompt_mask, attention_mask], dim=1)  # (batch, n + seq)

    def _extend_ids(self, kwargs: dict[str, Any]) -> None:
        """Extend per-position arguments (token types, positions) over the prompt, in place."""
        n = self.num_tokens
        if kwargs.get("token_type_ids") is not None:
            types = kwargs["token_type_ids"]
            kwargs["token_type_ids"] = torch.cat([types.new_zeros(types.shape[0], n), types], dim=1)
        if kwargs.get("position_ids") is not None:
            positions = kwargs["position_ids"]
            if bool((positions[:, 1:] - positions[:, :-1] != 1).any()):
                raise LowresError("prompt_tuning cannot prepend one prompt to packed examples: turn packing off")
            prompt_positions = torch.arange(n, device=positions.device).expand(positions.shape[0], n)
            kwargs["position_ids"] = torch.cat([prompt_positions, positions + n], dim=1)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        """Run the wrapped model with the prompt prepended; return outputs aligned with the input.

        Args:
            input_ids: (batch, seq) token ids.
            attention_mask: (batch, seq) 1 for real tokens.
            labels: (batch, seq) masked-LM targets, or causal-LM targets (shifted inside, as
                transformers does); -100 is ignored.
            inputs_embeds: (batch, seq, hidden) instead of ``input_ids``.
            kwargs: Passed to the wrapped model (``output_hidden_states``, ``token_type_ids``, ...).

        Returns:
            The wrapped model's output type, with ``logits`` (batch, seq, vocab) and every hidden
            state (batch, seq, hidden) for the input positions only, and ``loss`` when labels are given.
        """
        if not self.prompt_enabled:  # switched off by the handle: the bare wrapped model
            return self.wrapped_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                                      inputs_embeds=inputs_embeds, **kwargs)
        if kwargs.get("output_attentions"):
            raise LowresError("prompt_tuning does not return attention maps")
        if kwargs.get("past_key_values") is not None:
            raise LowresError("prompt_tuning: use generate() for cached decoding")
        embeds, mask = self._prepend(input_ids, inputs_embeds, attention_mask)
        self._extend_ids(kwargs)
        kwargs["return_dict"] = True
        outputs = self.wrapped_model(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        n = self.num_tokens
        for key in SEQUENCE_OUTPUTS:
            if outputs.get(key) is not None:
                outputs[key] = outputs[key][:, n:]  # (batch, seq, ...)
        if outputs.get("hidden_states") is not None:
            outputs["hidden_states"] = tuple(state[:, n:] for state in outputs["hidden_states"])
        if labels is not None:
            outputs["loss"] = self._loss(outputs["logits"], labels)
        return outputs

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the language-modelling loss of input-aligned logits (mean over non-ignored labels)."""
        # lazy: imports transformers (and torch)

        vocab_size = logits.shape[-1]
        loss_function = ForCausalLMLoss if self.causal else ForMaskedLMLoss
        return loss_function(logits.contiguous(), labels, vocab_size=vocab_size)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 **kwargs: Any) -> torch.Tensor:
        """Generate after the prompt; return ``input_ids`` followed by the new tokens, as transformers does.

        Args:
            input_ids: (batch, seq) prompt-free input ids (left-padded for batches).
            attention_mask: (batch, seq) 1 for real tokens.
            kwargs: Generation settings (``max_new_tokens``, ``num_beams``, ...).
        """
        if not self.causal:
            raise LowresError("generate() needs a causal language model")
        embeds, mask = self._prepend(input_ids, None, attention_mask)
        new_tokens = self.wrapped_model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        return torch.cat([input_ids, new_tokens.to(input_ids.device)], dim=1)  # (batch, seq + new)


def initial_prompt(model: nn.Module, config: PromptTuningConfig) -> torch.Tensor:
    """Return (num_tokens, hidden) starting vectors drawn from the model's input embeddings."""
    embeddings = model.get_input_embeddings().weight.detach()  # (vocab, hidden)
    generator = torch.Generator().manual_seed(config.seed)
    if config.init == "vocab":
        token_ids = torch.randint(0, embeddings.shape[0], (config.num_tokens,), generator=generator)
        return embeddings[token_ids.to(embeddings.device)].clone()  # (num_tokens, hidden)
    noise = torch.randn(config.num_tokens, embeddings.shape[1], generator=generator)
    return (noise * embeddings.float().std()).to(device=embeddings.device, dtype=embeddings.dtype)
