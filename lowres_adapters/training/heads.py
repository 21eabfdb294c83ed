"""Task heads on top of a backbone's last hidden states: sequence and token classification, extractive QA.

A head is a small ``torch.nn.Module`` that maps ``(batch, seq, hidden)`` hidden states to logits
and knows its own loss. The backbone (base model + frozen language adapter + task adapter) is
called through :func:`last_hidden_states`, which skips the language-model head where it can, so
a 49k-entry vocabulary projection is not computed for nothing.

Heads standardise their input features first (``HeadConfig.normalize``): a decoder's last hidden
states share a few massive dimensions (SmolLM2-135M: one dimension near 30 in every mean-pooled
vector of norm about 40, pooled vectors of different texts at cosine 0.99), so the class signal is
a small variation on a large common offset. Without standardising, a head trained with Adam at the
recipe's learning rate only learns the class prior and predicts the majority class.

Heads are saved as plain tensors under :data:`HEAD_PREFIX` in ``adapter.safetensors`` next to the
task adapter's own tensors, and rebuilt from :class:`HeadConfig` (stored in the run settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional

from lowres_adapters.evaluation.retrieval import POOLINGS, pool_sequence
from lowres_adapters.registry import get_registry

HEAD_PREFIX = "lowres.head."
"""Key prefix of head tensors in ``adapter.safetensors``."""

HEAD_KINDS = {"sequence_classification": "one", "token_classification": "per_token", "extractive_qa": "span"}
"""The built-in task kinds and what they label (``TaskKind.labels_per_example``). Plugins add kinds
through ``register_task_kinds``; a head serves any kind by what it labels: one label per text
(pooled), a tag per token, or a start and an end position."""


def labelling(kind: str) -> str:
    """Return what a task of ``kind`` labels: ``"one"`` label per text, ``"per_token"`` tags or a
    ``"span"`` (built-in and registered kinds alike)."""
    return labels_per_example(kind)[0]


def labels_per_example(kind: str) -> tuple[str, int | None]:
    """Return ``(labels_per_example, fixed_labels)`` of a built-in or registered task kind.

    Raises:
        ValueError: For a kind neither built in nor registered, listing the known ones.
    """
    registry = get_registry()
    if kind in registry.names("task_kinds"):
        spec = registry.lookup("task_kinds", kind).spec
        return spec.labels_per_example, spec.fixed_labels
    if kind in HEAD_KINDS:
        return HEAD_KINDS[kind], 2 if HEAD_KINDS[kind] == "span" else None
    known = sorted(set(HEAD_KINDS) | set(registry.names("task_kinds")))
    raise ValueError(f"head kind must be one of {', '.join(known)}, got {kind!r}")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class HeadConfig:
    """Settings of a task head.

    Attributes:
        kind: A task kind: ``sequence_classification``, ``token_classification``, ``extractive_qa``
            or one a plugin registered (``lowres list tasks``).
        num_labels: Number of classes (or tags); 2 (start, end) for extractive QA.
        hidden_size: Width of the backbone's hidden states.
        pooling: How a sequence is reduced for sequence classification: ``mean`` over real tokens,
            ``first`` token (an encoder's ``<s>``/``[CLS]``) or ``last`` real token (a decoder's summary).
        dropout: Dropout on the hidden states before the head.
        layers: 2 = dense + tanh + output as AdapterHub's classification head; 1 = a single linear map.
        normalize: Standardise each feature (per hidden dimension, over the real tokens or pooled
            vectors of the batch while training; a running average of the last batches' statistics
            at evaluation, see :class:`FeatureStandardizer`). Off reproduces heads saved before.
        members: Independent heads (dense + output each) on the same standardised features; each
            is trained on its own loss and the head predicts with the mean of their logits (an
            ensemble: the seed spread of one refitted head averages out). 1 = a single head.
        member_size: Width of each member's dense layer (None: ``hidden_size``).
    """

    kind: str = "sequence_classification"
    num_labels: int = 2
    hidden_size: int = 768
    pooling: str = "mean"
    dropout: float = 0.1
    layers: int = 2
    normalize: bool = True
    members: int = 1
    member_size: int | None = None

    def __post_init__(self) -> None:
        shape, fixed_labels = labels_per_example(self.kind)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not (isinstance(self.num_labels, int) and self.num_labels >= 1):
            raise ValueError(f"num_labels must be a positive integer, got {self.num_labels!r}")
        if fixed_labels is not None and self.num_labels != fixed_labels:
            raise ValueError(f"a {self.kind} head has exactly {fixed_labels} outputs, got num_labels={self.num_labels}")
        if not (isinstance(self.hidden_size, int) and self.hidden_size >= 1):
            raise ValueError(f"hidden_size must be a positive integer, got {self.hidden_size!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.layers not in (1, 2):
            raise ValueError(f"layers must be 1 or 2, got {self.layers!r}")
        if not (isinstance(self.members, int) and self.members >= 1):
            raise ValueError(f"members must be a positive integer, got {self.members!r}")
        if self.member_size is not None and not (isinstance(self.member_size, int) and self.member_size >= 1):
            raise ValueError(f"member_size must be a positive integer or None, got {self.member_size!r}")

    @property
    def dense_size(self) -> int:
        """Width of one member's dense layer (its input width when ``layers`` is 1)."""
        return self.hidden_size if self.layers == 1 else self.member_size or self.hidden_size


class FeatureStandardizer(nn.Module):
    """Standardise each feature: batch statistics while training, their running average at evaluation.

    Like a batch norm without learned scale, except that the running statistics are an exponential
    average started from the first batch (not from 0 and 1): a task adapter moves the features it
    feeds the head while it trains, so evaluation must use the statistics of the last batches, and
    they must be right after a few steps already. The average lags about ``1 / momentum`` batches
    behind: it fits a learning rate that decays towards the end (the recipe's linear schedule).

    Args:
        size: Number of features.
        momentum: Weight of each new batch in the running statistics.
        eps: Added to the variance.
    """

    def __init__(self, size: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Return ``(n, size)`` rows standardised (a single training row uses the running statistics)."""
        if self.training and rows.shape[0] > 1:
            mean, variance = rows.mean(dim=0), rows.var(dim=0, unbiased=False)  # (size,) each
            with torch.no_grad():
                rate = 1.0 if int(self.batches) == 0 else self.momentum
                self.running_mean.lerp_(mean.detach(), rate)
                self.running_var.lerp_(rows.detach().var(dim=0, unbiased=True), rate)
                self.batches += 1
            return (rows - mean) / torch.sqrt(variance + self.eps)
        return (rows - self.running_mean) / torch.sqrt(self.running_var + self.eps)

    @torch.no_grad()
    def set_statistics(self, rows: torch.Tensor) -> None:
        """Set the running statistics to those of ``(n, size)`` rows (e.g. the trained model's
        features of some training examples), replacing the running average."""
        self.running_mean.copy_(rows.mean(dim=0))
        self.running_var.copy_(rows.var(dim=0, unbiased=True) if rows.shape[0] > 1 else torch.ones_like(rows[0]))
        self.batches.fill_(max(int(self.batches), 1))


class MemberOutputs(nn.Module):
    """The output layers of ``members`` heads: ``(..., members, size)`` -> ``(..., members, labels)``,
    each member's block initialised as its own ``nn.Linear(size, labels)``.

    Args:
        members: Number of heads.
        size: Width of each member's input.
        labels: Outputs per member.
    """

    def __init__(self, members: int, size: int, labels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, labels, size))
        self.bias = nn.Parameter(torch.empty(members, labels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every member's block as ``nn.Linear`` does (uniform in +-1/sqrt(size))."""
        bound = 1.0 / math.sqrt(self.weight.shape[-1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ms,mls->...ml", rows, self.weight) + self.bias


class TaskHead(nn.Module):
    """A task head: hidden states -> logits, with the task's loss.

    With ``members`` > 1 it holds that many independent heads (one wide dense layer, split into
    blocks, and :class:`MemberOutputs`): ``forward`` returns the mean of their logits and
    :meth:`training_loss` the mean of their own losses, so each member learns as if alone.

    Args:
        config: The head's settings.
    """

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.labels_per_example = labels_per_example(config.kind)[0]
        self.dropout = nn.Dropout(config.dropout)
        self.normalizer: nn.Module = FeatureStandardizer(config.hidden_size) if config.normalize else nn.Identity()
        width = config.members * config.dense_size
        if config.layers == 2:
            self.dense: nn.Module = nn.Sequential(nn.Linear(config.hidden_size, width), nn.Tanh(),
                                                  nn.Dropout(config.dropout))
        else:
            self.dense = nn.Identity()
        self.output: nn.Module = nn.Linear(config.dense_size, config.num_labels) if config.members == 1 \
            else MemberOutputs(config.members, config.dense_size, config.num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return logits: ``(batch, labels)`` for sequences, ``(batch, seq, labels)`` per token,
        ``(batch, seq, 2)`` start/end for QA (the members' mean)."""
        return self.member_logits(hidden, attention_mask).mean(dim=-2)

    def member_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return each member's logits: :meth:`forward`'s shape with a members axis before the last."""
        hidden = hidden.to(self.output.weight.dtype)
        if self.labels_per_example == "one":
            hidden = pool_sequence(hidden, attention_mask, self.config.pooling)  # (batch, hidden)
            hidden = self.standardize(hidden, torch.ones(hidden.shape[0], dtype=torch.bool, device=hidden.device))
        else:
            hidden = self.standardize(hidden, attention_mask.bool())  # (batch, seq, hidden)
        rows = self.dense(self.dropout(hidden))  # (..., members * dense) or (..., hidden) with one layer
        if self.config.members == 1:
            return self.output(rows).unsqueeze(-2)
        if self.config.layers == 1:
            rows = rows.unsqueeze(-2).expand(*rows.shape[:-1], self.config.members, rows.shape[-1])
        else:
            rows = rows.unflatten(-1, (self.config.members, self.config.dense_size))
        return self.output(rows)  # (..., members, labels)

    def training_loss(self, hidden: torch.Tensor, attention_mask: torch.Tensor, batch: Mapping[str, torch.Tensor],
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Return the mean of the members' own losses (:meth:`loss` of each member's logits): members
        share no parameter, so each gets the gradient it would get alone (scaled by 1/members)."""
        logits = self.member_logits(hidden, attention_mask)
        return torch.stack([self.loss(member, batch, class_weights)
                            for member in logits.unbind(dim=-2)]).mean()

    def feature_rows(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return the ``(n, hidden)`` rows the head standardises: pooled vectors, or real tokens."""
        hidden = hidden.to(self.output.weight.dtype)
        if self.labels_per_example == "one":
            return pool_sequence(hidden, attention_mask, self.config.pooling)
        return hidden[attention_mask.bool()]

    def standardize(self, hidden: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Return ``hidden`` standardised per dimension; statistics come from the rows where ``real``.

        Args:
            hidden: ``(batch, hidden)`` pooled vectors or ``(batch, seq, hidden)`` token states.
            real: ``(batch,)`` or ``(batch, seq)``: True on the rows that count (not padding).
        """
        if not self.config.normalize:
            return hidden
        rows = self.normalizer(hidden[real])  # (real rows, hidden)
        return hidden.masked_scatter(real.unsqueeze(-1), rows) if hidden.dim() == 3 else rows

    def loss(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor],
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Return the task loss of ``logits`` against the labels in ``batch``.

        ``batch`` holds ``labels`` (batch,) for sequences, ``labels`` (batch, seq) with -100 on
        ignored sub-tokens for tokens, ``start_positions`` and ``end_positions`` (batch,) for QA.
        ``class_weights`` (labels,) weigh each class's cross-entropy (see :func:`balanced_class_weights`);
        QA ignores them.
        """
        shape = self.labels_per_example
        if class_weights is not None:
            class_weights = class_weights.to(logits.device, torch.float32)
        if shape == "one":
            return functional.cross_entropy(logits.float(), batch["labels"], weight=class_weights)
        if shape == "per_token":
            flat_logits = logits.float().reshape(-1, logits.shape[-1])  # (batch * seq, labels)
            return functional.cross_entropy(flat_logits, batch["labels"].reshape(-1), weight=class_weights,
                                            ignore_index=IGNORE_INDEX)
        start_logits, end_logits = qa_logits(logits, batch["attention_mask"])
        return 0.5 * (functional.cross_entropy(start_logits, batch["start_positions"])
                      + functional.cross_entropy(end_logits, batch["end_positions"]))

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Return the head's tensors keyed under :data:`HEAD_PREFIX`, for ``adapter.safetensors``."""
        return {HEAD_PREFIX + key: value for key, value in self.state_dict().items()}

    def load_head_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Load tensors written by :meth:`head_state_dict` (other keys are ignored)."""
        own = {key[len(HEAD_PREFIX):]: value for key, value in tensors.items() if key.startswith(HEAD_PREFIX)}
        self.load_state_dict(own, strict=True)


def balanced_class_weights(label_ids: Sequence[int], num_labels: int) -> torch.Tensor:
    """Return ``(num_labels,)`` weights ``n / (num_labels * count)`` (scikit-learn's "balanced"),
    so every class weighs as much in the loss as if the classes were equally frequent; a class
    absent from ``label_ids`` gets weight 0. Ignored ids (-100) are not counted."""
    ids = torch.tensor([label for label in label_ids if label != IGNORE_INDEX], dtype=torch.long)
    counts = torch.bincount(ids, minlength=num_labels).float()  # (labels,)
    weights = counts.sum() / (num_labels * counts.clamp(min=1.0))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def qa_logits(logits: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``(batch, seq, 2)`` QA logits into start and end ``(batch, seq)``, padding masked out."""
    start_logits, end_logits = logits.float().unbind(dim=-1)  # (batch, seq) each
    padding = ~attention_mask.bool()
    lowest = torch.finfo(start_logits.dtype).min
    return start_logits.masked_fill(padding, lowest), end_logits.masked_fill(padding, lowest)


def backbone_of(module: nn.Module) -> nn.Module:
    """Return the transformer body of an LM-headed model (no vocabulary projection), else ``module``.

    Adapters that change a model in place (AdapterHub, PEFT's injected layers) live inside the body,
    so calling the body keeps them; a wrapper (e.g. a soft prompt) is returned unchanged.
    """
    prefix = getattr(module, "base_model_prefix", None)
    body = getattr(module, prefix, None) if prefix else None
    return body if isinstance(body, nn.Module) else module


def last_hidden_states(module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Return ``(batch, seq, hidden)`` last-layer states of ``module`` aligned with ``input_ids``.

    Args:
        module: A transformers model, its body, or a wrapper that accepts ``output_hidden_states``.
        input_ids: ``(batch, seq)`` token ids.
        attention_mask: ``(batch, seq)`` mask.
    """
    body = backbone_of(module)
    if body is not module:
        return body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    outputs = module(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = outputs.last_hidden_state if getattr(outputs, "last_hidden_state", None) is not None \
        else outputs.hidden_states[-1]
    if hidden.shape[1] != input_ids.shape[1]:
        raise ValueError(f"{type(module).__name__} returned {hidden.shape[1]} positions for {input_ids.shape[1]} "
                         "input tokens; its hidden states must be aligned with the input")
    return hidden


def keep_layers(model: nn.Module, count: int) -> int:
    """Cut the transformer body of ``model`` after its first ``count`` layers (in place); return
    how many it had. The head then reads the output of layer ``count`` (through the body's final
    norm): cheaper per token, and a decoder's middle layers carry more of a text's topic than its
    last ones, which are shaped for predicting the next token.

    Call before attaching adapters, so they are only built for the kept layers.
    """
    body = backbone_of(model)
    layers = getattr(body, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"cannot cut {type(body).__name__}: its layers are not a `layers` list")
    total = len(layers)
    if not 1 <= count <= total:
        raise ValueError(f"feature_layer must be between 1 and {total} (the model's layers), got {count}")
    body.layers = nn.ModuleList(list(layers)[:count])
    for config in {id(c): c for c in (getattr(model, "config", None), getattr(body, "config", None)) if c}.values():
        config.num_hidden_layers = count
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:count]
    return total


def build_head(config: HeadConfig, reference: Any = None) -> TaskHead:
    """Return a new head, on the device of ``reference`` (a module) when given."""
    head = TaskHead(config)
    if isinstance(reference, nn.Module):
        parameter = next(reference.parameters(), None)
        if parameter is not None:
            head.to(parameter.device)
    return head


def hidden_size_of(model: nn.Module) -> int:
    """Return the hidden width of a transformers model (``config.hidden_size``)."""
    config = getattr(model, "config", None)
    size = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    if not isinstance(size, int):
        raise ValueError(f"cannot tell the hidden size of {type(model).__name__}")
    return size


__all__ = [
    "HEAD_PREFIX", "HeadConfig", "TaskHead", "backbone_of", "balanced_class_weights", "build_head",
    "hidden_size_of", "keep_layers", "last_hidden_states", "pool_sequence", "qa_logits",
]
