"""Configs of the adapter types that wrap AdapterHub ``adapters`` 1.3.

Each config is a frozen dataclass whose defaults are AdapterHub's published defaults for the
method (the settings of arXiv 2502.10140: seq_bn reduction factor 16 with ReLU after the
feed-forward block; seq_bn_inv adds a NICE invertible adapter with reduction factor 2; LoRA r=8,
alpha=8, no dropout, on query and value). ``to_adapterhub()`` builds the ``adapters`` config object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "swish", "silu", "gelu", "gelu_new", "tanh", "sigmoid", "leakyrelu")
ATTENTION_MATRICES = ("q", "k", "v")


def _check_positive(owner: str, field_name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{owner}.{field_name} must be a positive number, got {value!r}")


def _check_positive_int(owner: str, field_name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}.{field_name} must be a positive integer, got {value!r}")


def _check_dropout(owner: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.dropout must be in [0, 1), got {value!r}")


def _check_activation(owner: str, value: Any) -> None:
    if value not in ACTIVATIONS:
        raise ValueError(f"{owner}.non_linearity must be one of {', '.join(ACTIVATIONS)}, got {value!r}")


def _check_leave_out(owner: str, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(i, int) and i >= 0 for i in value):
        raise ValueError(f"{owner}.leave_out must be a tuple of layer indices >= 0, got {value!r}")


@dataclass(frozen=True)
class SeqBnConfig:
    """Sequential bottleneck adapter (Pfeiffer) after each feed-forward block.

    Attributes:
        reduction_factor: Hidden size divided by the bottleneck size (16 -> 48 at hidden 768).
        non_linearity: Activation inside the bottleneck.
        dropout: Dropout on the bottleneck output.
        leave_out: Layer indices that get no adapter.
    """

    reduction_factor: float = 16
    non_linearity: str = "relu"
    dropout: float = 0.0
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive(owner, "reduction_factor", self.reduction_factor)
        _check_activation(owner, self.non_linearity)
        _check_dropout(owner, self.dropout)
        _check_leave_out(owner, self.leave_out)

    def _bottleneck_kwargs(self) -> dict[str, Any]:
        return {"reduction_factor": self.reduction_factor, "non_linearity": self.non_linearity,
                "dropout": self.dropout, "leave_out": list(self.leave_out)}

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.SeqBnConfig``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.SeqBnConfig(**self._bottleneck_kwargs())


@dataclass(frozen=True)
class DoubleSeqBnConfig(SeqBnConfig):
    """Two sequential bottleneck adapters per layer (Houlsby): after attention and after the feed-forward.

    Attributes:
        reduction_factor: Hidden size divided by the bottleneck size.
        non_linearity: Activation inside the bottlenecks (AdapterHub's default is swish).
        dropout: Dropout on the bottleneck output.
        leave_out: Layer indices that get no adapter.
    """

    non_linearity: str = "swish"

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.DoubleSeqBnConfig``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.DoubleSeqBnConfig(**self._bottleneck_kwargs())


@dataclass(frozen=True)
class SeqBnInvConfig(SeqBnConfig):
    """``seq_bn`` plus an invertible adapter on the token embeddings (MAD-X language adapter).

    Attributes:
        reduction_factor: Hidden size divided by the bottleneck size.
        non_linearity: Activation inside the bottleneck.
        dropout: Dropout on the bottleneck output.
        leave_out: Layer indices that get no adapter.
        inv_adapter: Invertible architecture: ``"nice"`` or ``"glow"``.
        inv_reduction_factor: Reduction factor inside the invertible adapter.
    """

    inv_adapter: str = "nice"
    inv_reduction_factor: float = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inv_adapter not in ("nice", "glow"):
            raise ValueError(f"SeqBnInvConfig.inv_adapter must be 'nice' or 'glow', got {self.inv_adapter!r}")
        _check_positive(type(self).__name__, "inv_reduction_factor", self.inv_reduction_factor)

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.SeqBnInvConfig``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.SeqBnInvConfig(inv_adapter=self.inv_adapter,
                                       inv_adapter_reduction_factor=self.inv_reduction_factor,
                                       **self._bottleneck_kwargs())


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank updates of the attention projections (AdapterHub's LoRA).

    Attributes:
        r: Rank of the update.
        alpha: Scaling numerator (the update is multiplied by ``alpha / r``).
        dropout: Dropout on the LoRA input.
        attn_matrices: Which attention projections get an update: any of ``"q"``, ``"k"``, ``"v"``.
        intermediate_lora: Also adapt the feed-forward up-projection.
        output_lora: Also adapt the feed-forward down-projection.
        leave_out: Layer indices that get no update.
    """

    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    attn_matrices: tuple[str, ...] = ("q", "v")
    intermediate_lora: bool = False
    output_lora: bool = False
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive_int(owner, "r", self.r)
        _check_positive(owner, "alpha", self.alpha)
        _check_dropout(owner, self.dropout)
        _check_leave_out(owner, self.leave_out)
        if not isinstance(self.attn_matrices, tuple) or not set(self.attn_matrices) <= set(ATTENTION_MATRICES):
            raise ValueError(f"{owner}.attn_matrices must be a tuple of 'q', 'k', 'v', got {self.attn_matrices!r}")
        if not (self.attn_matrices or self.intermediate_lora or self.output_lora):
            raise ValueError(f"{owner}: nothing to adapt (empty attn_matrices and no feed-forward update)")

    def _lora_kwargs(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "attn_matrices": list(self.attn_matrices), "selfattn_lora": bool(self.attn_matrices),
                "intermediate_lora": self.intermediate_lora, "output_lora": self.output_lora,
                "leave_out": list(self.leave_out)}

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.LoRAConfig``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.LoRAConfig(**self._lora_kwargs())


@dataclass(frozen=True)
class Ia3Config:
    """(IA)^3: learned scaling vectors on keys, values and the feed-forward up-projection.

    Attributes:
        attn_matrices: Which attention projections are rescaled: any of ``"q"``, ``"k"``, ``"v"``.
        intermediate_lora: Also rescale the feed-forward up-projection.
        leave_out: Layer indices left unchanged.
    """

    attn_matrices: tuple[str, ...] = ("k", "v")
    intermediate_lora: bool = True
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_leave_out(owner, self.leave_out)
        if not isinstance(self.attn_matrices, tuple) or not set(self.attn_matrices) <= set(ATTENTION_MATRICES):
            raise ValueError(f"{owner}.attn_matrices must be a tuple of 'q', 'k', 'v', got {self.attn_matrices!r}")
        if not (self.attn_matrices or self.intermediate_lora):
            raise ValueError(f"{owner}: nothing to rescale")

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.IA3Config``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.IA3Config(attn_matrices=list(self.attn_matrices),
                                  selfattn_lora=bool(self.attn_matrices),
                                  intermediate_lora=self.intermediate_lora, leave_out=list(self.leave_out))


@dataclass(frozen=True)
class PrefixTuningConfig:
    """Prefix tuning: trainable key/value prefixes in every attention layer, produced by a small MLP.

    Attributes:
        prefix_length: Number of prefix positions.
        bottleneck_size: Hidden size of the reparametrisation MLP.
        non_linearity: Activation of that MLP.
        flat: Train the prefixes directly instead of through the MLP.
        dropout: Dropout on the prefixes.
        leave_out: Layer indices that get no prefix.
    """

    prefix_length: int = 30
    bottleneck_size: int = 512
    non_linearity: str = "tanh"
    flat: bool = False
    dropout: float = 0.0
    leave_out: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive_int(owner, "prefix_length", self.prefix_length)
        _check_positive_int(owner, "bottleneck_size", self.bottleneck_size)
        _check_activation(owner, self.non_linearity)
        _check_dropout(owner, self.dropout)
        _check_leave_out(owner, self.leave_out)

    def to_adapterhub(self) -> Any:
        """Return the equivalent ``adapters.PrefixTuningConfig``."""
        # lazy: imports adapters (and torch)
        import adapters

        return adapters.PrefixTuningConfig(prefix_length=self.prefix_length, bottleneck_size=self.bottleneck_size,
                                           non_linearity=self.non_linearity, flat=self.flat,
                                           dropout=self.dropout, leave_out=list(self.leave_out))
