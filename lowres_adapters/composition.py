"""Compose attached adapters: stack a task adapter on a frozen language adapter, fuse, average.

MAD-X (arXiv 2005.00052, used by arXiv 2502.10140): a language adapter, trained first, is loaded
frozen and a task adapter (plus head) is stacked on it, ``Stack(lang, task)``; only the task
adapter and head train. AdapterFusion learns to mix several frozen adapters (e.g. the text and the
graph language adapters) under the task adapter, ``Stack(Fuse(text, graph), task)``.

Every function takes and returns handles (:class:`~lowres_adapters.specs.AttachedAdapter`), so a
recipe trains a composition exactly like a single adapter: ``activate()``, train
``trainable_parameters()``, save ``adapter_state_dict()``.

What composes with what:

- :func:`stack` with two AdapterHub adapters (or a fusion below) uses AdapterHub's ``Stack``.
  With other types (``prompt_tuning``, ``full``, PEFT plugin types) the lower adapter simply stays
  in the model, frozen, and the upper one is applied after it; e.g. a soft prompt trained on top
  of a frozen ``seq_bn`` language adapter. Attach AdapterHub adapters before a soft prompt.
- :func:`fuse` and :func:`average` need AdapterHub adapters (they are AdapterHub features);
  other types raise a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import adapters
import torch

from lowres_adapters.adapterhub import AdapterHubAdapter, attach_adapterhub, save_adapterhub_files, set_active_setup
from lowres_adapters.errors import LowresError
from lowres_adapters.handles import ParameterSetAdapter, added_parameter_names, parameter_names
from lowres_adapters.specs import AttachedAdapter

FUSION_NATIVE_DIR = "fusion"
"""Sub-folder of ``save_native`` output holding AdapterHub's fusion files, when the fusion trains."""


@dataclass(frozen=True)
class FusionConfig:
    """An AdapterFusion layer over named adapters.

    Attributes:
        adapters: Names of the fused adapters, in order.
        fusion: AdapterHub fusion config name (``"dynamic"`` learns query, key and value).
    """

    adapters: tuple[str, ...] = ()
    fusion: str = "dynamic"

    def __post_init__(self) -> None:
        if len(self.adapters) < 2:
            raise ValueError(f"FusionConfig.adapters needs at least two names, got {self.adapters!r}")
        if self.fusion not in ("dynamic", "static"):
            raise ValueError(f"FusionConfig.fusion must be 'dynamic' or 'static', got {self.fusion!r}")


class FusedAdapters(ParameterSetAdapter):
    """Handle on an AdapterFusion layer: the fusion weights train, the fused adapters stay frozen."""

    @property
    def setup(self) -> Any:
        """Return the AdapterHub ``Fuse`` block."""
        return adapters.Fuse(*self.config.adapters)

    def _select(self) -> None:
        set_active_setup(self.model, self.setup)

    def save_native(self, directory: Path) -> list[str]:
        """Write AdapterHub's fusion files (``load_adapter_fusion(dir, use_safetensors=True)``)."""
        return save_adapterhub_files(self.model, self.setup, Path(directory))


def _require_adapterhub(handles: Sequence[AttachedAdapter], what: str) -> None:
    others = [type(h).__name__ for h in handles if not isinstance(h, AdapterHubAdapter)]
    if others:
        raise LowresError(f"{what} works on AdapterHub adapter types only (seq_bn, lora, ...), got {', '.join(others)}")
    if len({id(h.model) for h in handles}) != 1:
        raise LowresError(f"{what} needs adapters attached to the same model")


def fuse(handles: Sequence[AttachedAdapter], fusion: str = "dynamic") -> FusedAdapters:
    """Add an AdapterFusion layer over ``handles`` (AdapterHub adapters on one model).

    Args:
        handles: Two or more attached AdapterHub adapters (e.g. text and graph language adapters).
        fusion: ``"dynamic"`` (AdapterHub's default) or ``"static"``.

    Returns:
        A handle whose trainable parameters are the fusion layer's only.
    """
    _require_adapterhub(handles, "fusion")
    config = FusionConfig(adapters=tuple(h.name for h in handles), fusion=fusion)
    model = handles[0].model
    before = parameter_names(model)
    try:
        model.add_adapter_fusion(adapters.Fuse(*config.adapters), config=fusion)
    except ValueError as error:
        raise LowresError(f"cannot fuse {', '.join(config.adapters)}: {error}") from None
    return FusedAdapters(model, ",".join(config.adapters), config, added_parameter_names(model, before))


def _outer_model(first: Any, second: Any) -> Any:
    """Return whichever model contains the other (the one to call), or raise."""
    if first is second or any(module is second for module in first.modules()):
        return first
    if any(module is first for module in second.modules()):
        return second
    raise LowresError("stack needs both adapters on the same model (attach both to one model)")


class StackedAdapters(ParameterSetAdapter):
    """Handle on ``upper`` applied after a frozen ``lower`` (MAD-X); ``name`` and ``config`` are the upper's.

    Attributes:
        lower: The frozen (language) adapter or fusion.
        upper: The (task) adapter that trains.
        train_lower: Whether the lower handle's own trainable parameters train too (a fusion layer).
    """

    def __init__(self, lower: AttachedAdapter, upper: AttachedAdapter, model: Any, trainable_names: list[str],
                 train_lower: bool, extra_modules: dict[str, Any] | None) -> None:
        super().__init__(model, upper.name, upper.config, trainable_names, extra_modules=extra_modules)
        self.lower, self.upper, self.train_lower = lower, upper, train_lower

    def _select(self) -> None:
        lower_setup = _adapterhub_setup(self.lower)
        if lower_setup is not None and isinstance(self.upper, AdapterHubAdapter):
            set_active_setup(self.upper.model, adapters.Stack(lower_setup, self.upper.name))
            return
        for handle in (self.lower, self.upper):
            select = getattr(handle, "_select", None)
            if callable(select):
                select()

    def save_native(self, directory: Path) -> list[str]:
        """Write the upper adapter's native files, and the fusion's under ``fusion/`` when it trains."""
        written = list(self.upper.save_native(Path(directory)))
        if self.train_lower:
            fusion_files = self.lower.save_native(Path(directory) / FUSION_NATIVE_DIR)
            written += [f"{FUSION_NATIVE_DIR}/{name}" for name in fusion_files]
        return written


def _adapterhub_setup(handle: AttachedAdapter) -> Any:
    if isinstance(handle, FusedAdapters):
        return handle.setup
    if isinstance(handle, AdapterHubAdapter):
        return handle.name
    return None


def stack(lower: AttachedAdapter, upper: AttachedAdapter, *, head: Any = None, head_prefix: str = "head",
          train_lower: bool = False) -> StackedAdapters:
    """Stack ``upper`` on ``lower`` (MAD-X ``Stack(lang, task)``) and return a handle training the upper only.

    Args:
        lower: The language adapter (or a :func:`fuse` handle), kept frozen.
        upper: The task adapter, attached to the same model.
        head: Optional task head module outside the model; its parameters train and are saved
            as ``"<head_prefix>.<name>"``.
        head_prefix: Key prefix for the head's parameters.
        train_lower: Also train the lower handle's trainable parameters (use for a fusion layer,
            which learns together with the task adapter).

    Returns:
        A :class:`StackedAdapters` handle; call ``activate()`` before training.
    """
    if lower is upper:
        raise LowresError("stack needs two different adapters")
    model = _outer_model(lower.model, upper.model)
    names_by_id = {id(p): name for name, p in model.named_parameters()}
    trained = list(upper.trainable_parameters().values())
    if train_lower:
        trained += list(lower.trainable_parameters().values())
    missing = [p for p in trained if id(p) not in names_by_id]
    if missing:
        raise LowresError("stack: a trainable parameter is not part of the model being called")
    extra = {head_prefix: head} if head is not None else None
    return StackedAdapters(lower, upper, model, [names_by_id[id(p)] for p in trained], train_lower, extra)


def average(handles: Sequence[AttachedAdapter], name: str, weights: Sequence[float] | None = None) -> AdapterHubAdapter:
    """Add a new adapter ``name`` whose every tensor is the weighted average of ``handles``' tensors.

    Unlike AdapterHub's ``average_adapter``, the invertible embedding adapter of ``seq_bn_inv``
    is averaged too. For LoRA this averages A and B separately (AdapterHub's default), which is
    not the average of the weight updates.

    Args:
        handles: AdapterHub adapters of one type with equal configs, on one model.
        name: Name of the new adapter.
        weights: One weight per handle; equal weights when None.

    Returns:
        The new adapter's handle (not yet active).
    """
    _require_adapterhub(handles, "average")
    if len({repr(h.config) for h in handles}) != 1:
        raise LowresError("average needs adapters of one type with equal settings")
    weights = [1.0 / len(handles)] * len(handles) if weights is None else list(weights)
    if len(weights) != len(handles):
        raise LowresError(f"average: {len(weights)} weights for {len(handles)} adapters")
    averaged = attach_adapterhub(handles[0].model, name, handles[0].config)
    sources = [h.trainable_parameters() for h in handles]
    with torch.no_grad():
        for key, parameter in averaged.trainable_parameters().items():
            parts = [source[_renamed(key, name, h.name)] for source, h in zip(sources, handles)]
            parameter.copy_(sum(weight * part for weight, part in zip(weights, parts)))
    return averaged


def _renamed(key: str, old: str, new: str) -> str:
    """Return ``key`` with every dotted segment equal to ``old`` replaced by ``new``."""
    return ".".join(new if segment == old else segment for segment in key.split("."))
