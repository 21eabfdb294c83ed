"""Layer-wise analysis: how much each weight moved between two checkpoints, and where.

For every parameter tensor present in both checkpoints: ``||dW||_F`` and ``||dW||_F / ||W||_F``
(arXiv 2512.03976), grouped by type (embedding/output, attention, MLP, norm) and layer index. Group
figures aggregate the Frobenius norms over the group's tensors (``sqrt(sum ||dW||^2)``), so a big
matrix counts more than a small one. Also: per-layer norms of an adapter's own tensors, and linear
CKA (Kornblith et al., 2019) between two sets of hidden states.

This module is pure tensor arithmetic; :mod:`.snapshots` loads checkpoints into effective weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import torch

KINDS = ("embedding/output", "attention", "mlp", "norm", "other")
"""Parameter types, in report order."""

_LAYER = re.compile(r"\.(?:layers|layer|h|blocks|block)\.(\d+)\.")
_KIND_PATTERNS = (  # checked in order: a LayerNorm inside an attention block is a norm
    ("norm", re.compile(r"norm|ln_?\d*\b|ln_f", re.IGNORECASE)),
    ("embedding/output", re.compile(r"embed|wte|wpe|lm_head|cls\.predictions|\.decoder\.", re.IGNORECASE)),
    ("attention", re.compile(r"attn|attention|q_proj|k_proj|v_proj|o_proj|query|key|value", re.IGNORECASE)),
    ("mlp", re.compile(r"mlp|intermediate|\.output\.dense|gate_proj|up_proj|down_proj|fc\d|ffn|c_fc",
                       re.IGNORECASE)),
)


def parameter_kind(name: str) -> str:
    """Return the type of a parameter from its name: one of :data:`KINDS`."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(name):
            return kind
    return "other"


def layer_index(name: str) -> int | None:
    """Return the transformer block index in a parameter name, or None outside the blocks."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class TensorChange:
    """How one parameter tensor moved.

    Attributes:
        name: Parameter name.
        kind: One of :data:`KINDS`.
        layer: Block index, or None (embeddings, final norm, head).
        numel: Number of elements compared.
        delta_norm: ``||W_after - W_before||_F``.
        base_norm: ``||W_before||_F``.
        added_rows: Rows present only after (an extended vocabulary); not part of the norms.
    """

    name: str
    kind: str
    layer: int | None
    numel: int
    delta_norm: float
    base_norm: float
    added_rows: int = 0

    @property
    def relative(self) -> float:
        """Return ``||dW||_F / ||W||_F`` (0 when both are 0)."""
        if self.base_norm == 0.0:
            return 0.0 if self.delta_norm == 0.0 else math.inf
        return self.delta_norm / self.base_norm


def weight_changes(before: Mapping[str, "torch.Tensor"], after: Mapping[str, "torch.Tensor"]) -> list[TensorChange]:
    """Compare every tensor present in both mappings (same name), in ``before``'s order.

    A tensor that grew along its first dimension (new vocabulary rows) is compared on the rows
    both have; the number of new rows is recorded. Other shape changes are skipped.
    """
    changes = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            continue
        added_rows = 0
        if new.shape != old.shape:
            if new.ndim != old.ndim or new.shape[1:] != old.shape[1:] or new.shape[0] < old.shape[0]:
                continue
            added_rows = new.shape[0] - old.shape[0]
            new = new[: old.shape[0]]  # (rows of before, ...)
        old64, new64 = old.detach().double(), new.detach().double()
        changes.append(TensorChange(
            name=name, kind=parameter_kind(name), layer=layer_index(name), numel=old.numel(),
            delta_norm=float((new64 - old64).norm()), base_norm=float(old64.norm()), added_rows=added_rows,
        ))
    return changes


@dataclass(frozen=True)
class GroupChange:
    """Aggregated change of a group of tensors.

    Attributes:
        delta_norm: ``sqrt(sum ||dW||_F^2)`` over the group.
        base_norm: ``sqrt(sum ||W||_F^2)`` over the group.
        tensors: Number of tensors in the group.
        numel: Number of elements in the group.
    """

    delta_norm: float
    base_norm: float
    tensors: int
    numel: int

    @property
    def relative(self) -> float:
        """Return the group's ``||dW|| / ||W||``."""
        return self.delta_norm / self.base_norm if self.base_norm else 0.0

    def to_dict(self) -> dict[str, float]:
        """Return the figures (relative included) as a dict."""
        return {**asdict(self), "relative": self.relative}


def _aggregate(changes: list[TensorChange]) -> GroupChange:
    return GroupChange(delta_norm=math.sqrt(sum(c.delta_norm ** 2 for c in changes)),
                       base_norm=math.sqrt(sum(c.base_norm ** 2 for c in changes)),
                       tensors=len(changes), numel=sum(c.numel for c in changes))


def group_by_kind(changes: list[TensorChange]) -> dict[str, GroupChange]:
    """Return the aggregated change per parameter type (types without tensors left out)."""
    return {kind: _aggregate([c for c in changes if c.kind == kind])
            for kind in KINDS if any(c.kind == kind for c in changes)}


def group_by_kind_and_layer(changes: list[TensorChange]) -> dict[str, dict[int, GroupChange]]:
    """Return ``{kind: {layer: change}}`` for tensors inside the transformer blocks."""
    grouped: dict[str, dict[int, GroupChange]] = {}
    for kind in KINDS:
        layers = sorted({c.layer for c in changes if c.kind == kind and c.layer is not None})
        if layers:
            grouped[kind] = {layer: _aggregate([c for c in changes if c.kind == kind and c.layer == layer])
                             for layer in layers}
    return grouped


def adapter_layer_norms(tensors: Mapping[str, "torch.Tensor"]) -> dict[str, float]:
    """Return the Frobenius norm of an adapter's own tensors per block (``"-"``: outside the blocks).

    Keys are layer indices as strings (JSON-friendly), in numeric order, ``"-"`` last.
    """
    squares: dict[int | None, float] = {}
    for name, tensor in tensors.items():
        layer = layer_index(name)
        squares[layer] = squares.get(layer, 0.0) + float(tensor.detach().double().pow(2).sum())
    ordered = sorted((layer for layer in squares if layer is not None))
    norms = {str(layer): math.sqrt(squares[layer]) for layer in ordered}
    if None in squares:
        norms["-"] = math.sqrt(squares[None])
    return norms


def linear_cka(first: "torch.Tensor", second: "torch.Tensor") -> float:
    """Return linear CKA between two ``(examples, features)`` matrices (1 = same up to rotation and scale).

    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F * ||Yc^T Yc||_F)`` with column-centred ``Xc``, ``Yc``.
    """
    if first.shape[0] != second.shape[0]:
        raise ValueError(f"CKA needs the same examples: {first.shape[0]} vs {second.shape[0]} rows")
    x = first.double() - first.double().mean(dim=0, keepdim=True)  # (examples, features_x)
    y = second.double() - second.double().mean(dim=0, keepdim=True)  # (examples, features_y)
    cross = (y.T @ x).norm() ** 2
    denominator = (x.T @ x).norm() * (y.T @ y).norm()
    return float(cross / denominator) if denominator > 0 else 0.0


def summarize(changes: list[TensorChange]) -> dict[str, Any]:
    """Return a JSON-ready summary: per type, per type and layer, and the types ranked by relative change."""
    by_kind = group_by_kind(changes)
    by_layer = group_by_kind_and_layer(changes)
    ranking = sorted(by_kind, key=lambda kind: by_kind[kind].relative, reverse=True)
    return {
        "by_kind": {kind: group.to_dict() for kind, group in by_kind.items()},
        "by_kind_and_layer": {kind: {str(layer): group.to_dict() for layer, group in layers.items()}
                              for kind, layers in by_layer.items()},
        "ranking": ranking,
        "added_rows": max((c.added_rows for c in changes), default=0),
        "tensors": len(changes),
    }
