"""What a language-modelling evaluation adds up (:class:`LanguageModelScores`), and the windows and
device helpers both scorers (:mod:`.language_modeling`, :mod:`.pseudo_perplexity`) share.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch


@dataclass(frozen=True)
class LanguageModelScores:
    """Totals of a language-modelling evaluation.

    Attributes:
        nll_nats: Summed negative log-likelihood (pseudo-log-likelihood for ``mlm``), in nats.
        tokens: Number of tokens scored.
        chars: Number of characters in the scored texts.
        bytes: Number of UTF-8 bytes in the scored texts.
        texts: Number of non-empty texts scored.
        objective: ``"clm"`` or ``"mlm"``.
        pseudo_perplexity: For ``mlm``: mean over texts of ``exp(-PLL / N)``; else None.
    """

    nll_nats: float
    tokens: int
    chars: int
    bytes: int
    texts: int
    objective: str = "clm"
    pseudo_perplexity: float | None = None

    @property
    def loss_per_token(self) -> float:
        """Return the mean negative log-likelihood per token, in nats."""
        return self.nll_nats / self.tokens

    @property
    def perplexity(self) -> float:
        """Return ``exp(loss_per_token)`` (corpus-level; tokenizer-dependent)."""
        return math.exp(self.loss_per_token)

    @property
    def bits_per_char(self) -> float:
        """Return the total negative log-likelihood in bits divided by the number of characters."""
        return self.nll_nats / math.log(2) / self.chars

    @property
    def bits_per_byte(self) -> float:
        """Return the total negative log-likelihood in bits divided by the number of UTF-8 bytes."""
        return self.nll_nats / math.log(2) / self.bytes

    def to_dict(self) -> dict[str, Any]:
        """Return the totals and the derived figures as a JSON-ready dict."""
        values = asdict(self)
        if self.pseudo_perplexity is None:
            values.pop("pseudo_perplexity")
        values.update(loss_per_token=self.loss_per_token, perplexity=self.perplexity,
                      bits_per_char=self.bits_per_char, bits_per_byte=self.bits_per_byte)
        return values


def window_spans(length: int, max_length: int, first_target: int = 1) -> Iterator[tuple[int, int, int]]:
    """Yield ``(start, end, first_scored)`` windows covering positions ``first_target..length-1``.

    Each position is scored in exactly one window; after the first window every window keeps
    ``max_length // 2`` positions of left context.
    """
    overlap = max_length // 2
    scored_until = first_target
    start = 0
    while scored_until < length:
        end = min(start + max_length, length)
        yield start, end, scored_until
        scored_until = end
        start = end - overlap


def model_device(model: Any) -> Any:
    """Return the device of the model's first parameter (CPU when it has none)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")
