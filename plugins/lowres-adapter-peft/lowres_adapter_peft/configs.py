"""Configs of the PEFT adapter types: frozen dataclasses with PEFT's defaults.

``target_modules=()`` means "the method's usual layers for this architecture", found by module
name, so encoders work although PEFT has no masked-LM task type: attention query and value
(``q_proj``/``v_proj`` on Llama, ``query``/``value`` on BERT and XLM-R); for (IA)^3 keys, values
and the feed-forward down-projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _check_positive_int(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _check_dropout(owner: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.dropout must be in [0, 1), got {value!r}")


def _check_names(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{owner}.{name} must be a tuple of module names, got {value!r}")


@dataclass(frozen=True)
class PeftLoraConfig:
    """PEFT LoRA.

    Attributes:
        r: Rank of the update.
        alpha: Scaling numerator (update times ``alpha / r``).
        dropout: Dropout on the LoRA input.
        target_modules: Module names to adapt; () = attention query and value.
    """

    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive_int(owner, "r", self.r)
        _check_positive_int(owner, "alpha", self.alpha)
        _check_dropout(owner, self.dropout)
        _check_names(owner, "target_modules", self.target_modules)

    def to_peft(self, targets: list[str]) -> Any:
        """Return the ``peft.LoraConfig`` for the given target module names."""
        import peft

        return peft.LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets)


@dataclass(frozen=True)
class PeftIa3Config:
    """PEFT (IA)^3: learned scaling vectors.

    Attributes:
        target_modules: Module names to rescale; () = keys, values and feed-forward down-projection.
        feedforward_modules: Which targets are feed-forward (scaled on their input); () = the
            down-projection when ``target_modules`` is automatic, else none.
    """

    target_modules: tuple[str, ...] = ()
    feedforward_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_names(owner, "target_modules", self.target_modules)
        _check_names(owner, "feedforward_modules", self.feedforward_modules)
        if not set(self.feedforward_modules) <= set(self.target_modules):
            raise ValueError(f"{owner}.feedforward_modules must be a subset of target_modules")

    def to_peft(self, targets: list[str], feedforward: list[str]) -> Any:
        """Return the ``peft.IA3Config`` for the given module names."""
        import peft

        return peft.IA3Config(target_modules=targets, feedforward_modules=feedforward)


@dataclass(frozen=True)
class PeftVeraConfig:
    """PEFT VeRA: frozen random projections shared by all layers, trained scaling vectors.

    Attributes:
        r: Rank of the shared random projections.
        projection_prng_key: Seed of the shared projections (they are rebuilt from it, not saved).
        d_initial: Initial value of the ``lambda_d`` vectors.
        dropout: Dropout on the VeRA input.
        target_modules: Module names to adapt; () = attention query and value.
    """

    r: int = 256
    projection_prng_key: int = 0
    d_initial: float = 0.1
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive_int(owner, "r", self.r)
        if isinstance(self.projection_prng_key, bool) or not isinstance(self.projection_prng_key, int):
            raise ValueError(f"{owner}.projection_prng_key must be an integer")
        if isinstance(self.d_initial, bool) or not isinstance(self.d_initial, (int, float)):
            raise ValueError(f"{owner}.d_initial must be a number")
        _check_dropout(owner, self.dropout)
        _check_names(owner, "target_modules", self.target_modules)

    def to_peft(self, targets: list[str]) -> Any:
        """Return the ``peft.VeraConfig`` for the given target module names."""
        import peft

        return peft.VeraConfig(r=self.r, projection_prng_key=self.projection_prng_key, d_initial=self.d_initial,
                               vera_dropout=self.dropout, target_modules=targets)


@dataclass(frozen=True)
class PeftLohaConfig:
    """PEFT LoHa: low-rank Hadamard-product updates.

    Attributes:
        r: Rank of each factor pair.
        alpha: Scaling numerator.
        target_modules: Module names to adapt; () = attention query and value.
    """

    r: int = 8
    alpha: int = 8
    target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_positive_int(owner, "r", self.r)
        _check_positive_int(owner, "alpha", self.alpha)
        _check_names(owner, "target_modules", self.target_modules)

    def to_peft(self, targets: list[str]) -> Any:
        """Return the ``peft.LoHaConfig`` for the given target module names."""
        import peft

        return peft.LoHaConfig(r=self.r, alpha=self.alpha, target_modules=targets)


@dataclass(frozen=True)
class PeftLokrConfig(PeftLohaConfig):
    """PEFT LoKr: low-rank Kronecker-product updates.

    Attributes:
        r: Rank of the low-rank factor.
        alpha: Scaling numerator.
        target_modules: Module names to adapt; () = attention query and value.
    """

    def to_peft(self, targets: list[str]) -> Any:
        """Return the ``peft.LoKrConfig`` for the given target module names."""
        import peft

        return peft.LoKrConfig(r=self.r, alpha=self.alpha, target_modules=targets)
