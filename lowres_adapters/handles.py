"""A reusable base for adapter handles: a named set of parameters that train, and nothing else.

Every built-in adapter type (and the PEFT plugin) returns a subclass of :class:`ParameterSetAdapter`
from its ``attach`` function. Plugin authors can do the same: record which parameter names the
adapter added, and the base class freezes everything else, lists and saves exactly those tensors,
and loads them back with shape checks.

Switching off: ``with handle.disabled(): ...`` runs the block on the bare base model (the
frozen teacher of prompt-align, base scoring). A subclass implements it by overriding
:meth:`ParameterSetAdapter._switch_off`; a type that cannot raises :class:`CannotDisable`, and
recipes that need the bare base refuse it in one line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from lowres_adapters.errors import LowresError

if TYPE_CHECKING:  # pragma: no cover
    import torch


class CannotDisable(LowresError):
    """Raised by ``handle.disabled()`` when an adapter type cannot switch itself off."""


def parameter_names(model: "torch.nn.Module") -> set[str]:
    """Return the names of every parameter of ``model`` (shared tensors listed once)."""
    return {name for name, _ in model.named_parameters()}


def added_parameter_names(model: "torch.nn.Module", before: set[str]) -> list[str]:
    """Return, in model order, the parameter names of ``model`` that are not in ``before``."""
    return [name for name, _ in model.named_parameters() if name not in before]


class ParameterSetAdapter:
    """Handle on an adapter made of a known set of parameters of ``model``.

    Implements :class:`~lowres_adapters.specs.AttachedAdapter`. Subclasses override
    :meth:`_select` (to make the adapter the active one in its library) and :meth:`save_native`.

    Args:
        model: The module to call for a forward pass; ``trainable_names`` are its parameter names.
        name: The adapter's name inside the model.
        config: The config the adapter was built from.
        trainable_names: Names (as in ``model.named_parameters()``) of exactly what trains.
        extra_modules: Modules outside ``model`` that belong to the adapter (e.g. a task head),
            keyed by a prefix; their parameters are listed as ``"<prefix>.<name>"``.
    """

    def __init__(self, model: "torch.nn.Module", name: str, config: Any, trainable_names: Iterable[str],
                 extra_modules: Mapping[str, "torch.nn.Module"] | None = None) -> None:
        self.model = model
        self.name = name
        self.config = config
        self._trainable_names = list(dict.fromkeys(trainable_names))
        self._extra_modules = dict(extra_modules or {})
        if not self._trainable_names and not self._extra_modules:
            raise LowresError(f"adapter {name!r} added no parameters to the model")
        known = parameter_names(model)
        unknown = [n for n in self._trainable_names if n not in known]
        if unknown:
            raise LowresError(f"adapter {name!r}: parameters not found in the model: {unknown[:3]}")

    def __repr__(self) -> str:
        count = sum(p.numel() for p in self.trainable_parameters().values())
        return f"{type(self).__name__}(name={self.name!r}, trainable={count:,})"

    # -- what trains ---------------------------------------------------------------------------

    def _select(self) -> None:
        """Make this adapter the one the model uses (library-specific; nothing by default)."""

    def activate(self) -> None:
        """Make this adapter the active one and freeze every weight it does not train."""
        self._select()
        trainable = set(self._trainable_names)
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_(name in trainable)
        for module in self._extra_modules.values():
            for parameter in module.parameters():
                parameter.requires_grad_(True)

    def trainable_parameters(self) -> dict[str, "torch.nn.Parameter"]:
        """Return exactly the parameters that train, keyed by their ``named_parameters`` name."""
        wanted = set(self._trainable_names)
        found = {name: p for name, p in self.model.named_parameters() if name in wanted}
        ordered = {name: found[name] for name in self._trainable_names}
        for prefix, module in self._extra_modules.items():
            for name, parameter in module.named_parameters():
                ordered[f"{prefix}.{name}"] = parameter
        return ordered

    # -- switching off -------------------------------------------------------------------------

    def _switch_off(self) -> Callable[[], None]:
        """Switch the adapter off and return the function that switches it back on.

        Override in a subclass; this default cannot, and raises :class:`CannotDisable`.
        """
        raise CannotDisable(
            f"adapter {self.name!r} ({type(self).__name__}) cannot switch itself off: its handle must "
            "implement disabled() (override ParameterSetAdapter._switch_off, see docs/plugins.md)")

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the block with this adapter off: ``model`` then computes exactly what the base model does.

        Raises:
            CannotDisable: For an adapter type that cannot switch itself off.
        """
        switch_on = self._switch_off()
        try:
            yield
        finally:
            switch_on()

    # -- saving and loading --------------------------------------------------------------------

    def adapter_state_dict(self) -> dict[str, "torch.Tensor"]:
        """Return the tensors to save: everything that trains, nothing else (detached, not copied)."""
        return {name: parameter.detach() for name, parameter in self.trainable_parameters().items()}

    def load_adapter_state_dict(self, tensors: Mapping[str, "torch.Tensor"]) -> None:
        """Load tensors produced by :meth:`adapter_state_dict`; raise on missing or mis-shaped keys."""
        # lazy: imports torch
        import torch

        # lazy: artifact imports safetensors
        from lowres_adapters.artifact import check_shapes

        targets = self.trainable_parameters()
        check_shapes(targets, tensors, where=f"adapter {self.name!r}")
        with torch.no_grad():
            for name, parameter in targets.items():
                parameter.copy_(tensors[name].to(device=parameter.device, dtype=parameter.dtype))

    def save_native(self, directory: Path) -> list[str]:
        """Write the upstream library's own files; this base class has none and returns []."""
        return []
