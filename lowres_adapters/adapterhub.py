"""AdapterHub (``adapters`` 1.3) inside the core: give a model adapter support, activate a setup,
the handle on one AdapterHub adapter, and AdapterHub's own file layout.

The built-in AdapterHub adapter types (:mod:`lowres_adapters.builtin.adapterhub_types`) attach
through :func:`attach_adapterhub`; :mod:`lowres_adapters.composition` stacks, fuses and averages
the handles it returns. Attaching works on an already-loaded transformers model with its LM head:
the model gets adapter support in place through ``adapters.init(model)``, and what trains is
exactly the parameters the adapter added (unlike ``adapters``' ``train_adapter``, the masked-LM
head stays frozen).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.handles import ParameterSetAdapter, added_parameter_names, parameter_names


def ensure_adapter_support(model: Any) -> Any:
    """Give ``model`` AdapterHub support in place (``adapters.init``) and return it.

    Raises:
        LowresError: When ``model`` is not a transformers model or ``adapters`` does not support
            its architecture.
    """
    # lazy: imports adapters (and torch)
    import adapters
    # lazy: imports transformers (and torch)
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise LowresError(
            f"AdapterHub adapter types attach to a transformers model, got {type(model).__name__} "
            "(attach them before wrapping the model, e.g. before prompt_tuning)"
        )
    try:
        adapters.init(model)
    except (ValueError, KeyError, AttributeError) as error:
        raise LowresError(
            f"adapters does not support {type(model).__name__} ({model.config.model_type}): {error}"
        ) from None
    return model


def set_active_setup(model: Any, adapter_setup: Any) -> None:
    """Activate an AdapterHub setup, without the spurious "none are activated" warning it logs."""
    # lazy: imports adapters (and torch)
    import adapters.model_mixin

    logger = adapters.model_mixin.logger
    level = logger.level
    logger.setLevel(logging.ERROR)  # set_active_adapters runs a dummy forward before activating
    try:
        model.set_active_adapters(adapter_setup)
    finally:
        logger.setLevel(level)


class AdapterHubAdapter(ParameterSetAdapter):
    """Handle on one AdapterHub adapter inside a model (see :class:`~lowres_adapters.specs.AttachedAdapter`)."""

    def _select(self) -> None:
        """Make this adapter the model's active AdapterHub setup."""
        set_active_setup(self.model, self.name)

    def _switch_off(self) -> Any:
        """Deactivate every AdapterHub adapter of the model; the returned function restores the setup."""
        config = self.model.adapters_config
        saved = config.active_setup
        config.active_setup = None

        def switch_on() -> None:
            config.active_setup = saved

        return switch_on

    def save_native(self, directory: Path) -> list[str]:
        """Write AdapterHub's own files: safetensors, no head.

        An AdapterHub user loads them with ``model.load_adapter(directory, use_safetensors=True)``.
        The LM head is not saved: it is frozen and, when tied, is the whole embedding matrix.
        """
        return save_adapterhub_files(self.model, self.name, Path(directory))


def save_adapterhub_files(model: Any, adapter_setup: Any, directory: Path) -> list[str]:
    """Save an adapter (or a fusion, given a ``Fuse``) in AdapterHub's layout, atomically per file.

    Args:
        model: A model with AdapterHub support.
        adapter_setup: Adapter name, or an ``adapters.Fuse`` block for a fusion layer.
        directory: Where the files go (created if needed).

    Returns:
        The names of the files written.
    """
    # lazy: imports adapters (and torch)
    import adapters
    # lazy: imports adapters (and torch)
    import adapters.loading

    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".adapterhub-", dir=directory))
    original_save_file = adapters.loading.save_file
    adapters.loading.save_file = _save_file_without_aliases  # prefix tuning shares one pool across layers
    try:
        if isinstance(adapter_setup, adapters.Fuse):
            model.save_adapter_fusion(str(staging), adapter_setup, with_head=False, use_safetensors=True)
        else:
            model.save_adapter(str(staging), adapter_setup, with_head=False, use_safetensors=True)
        written = sorted(path.name for path in staging.iterdir())
        for name in written:
            os.replace(staging / name, directory / name)
        return written
    finally:
        adapters.loading.save_file = original_save_file
        shutil.rmtree(staging, ignore_errors=True)


def _save_file_without_aliases(tensors: dict[str, Any], filename: str, metadata: Any = None) -> None:
    """Save safetensors keeping one name per shared tensor (the shortest), as AdapterHub's loader needs one.

    ``adapters`` lists a prefix-tuning pool under every layer that uses it; safetensors refuses
    tensors that share memory, so the aliases are dropped and the pool's own name is kept.
    """
    # lazy: safetensors.torch imports torch
    from safetensors.torch import save_file

    kept: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name in sorted(tensors, key=lambda key: (len(key), key)):
        tensor = tensors[name]
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        kept.setdefault(identity, name)
    save_file({name: tensors[name].contiguous() for name in kept.values()}, filename, metadata=metadata)


def attach_adapterhub(model: Any, name: str, config: Any) -> AdapterHubAdapter:
    """Add an AdapterHub adapter named ``name`` to ``model`` and return its handle (not yet active).

    Args:
        model: A transformers model (with or without AdapterHub support yet).
        name: Name of the adapter inside the model; must be new.
        config: One of the configs of :mod:`lowres_adapters.builtin.adapterhub_configs`.
    """
    ensure_adapter_support(model)
    if name in model.adapters_config:
        raise LowresError(f"the model already has an adapter named {name!r}")
    before = parameter_names(model)
    try:
        model.add_adapter(name, config=config.to_adapterhub())
    except ValueError as error:
        raise LowresError(f"cannot add {name!r} to {type(model).__name__}: {error}") from None
    added = added_parameter_names(model, before)
    return AdapterHubAdapter(model, name, config, added)
