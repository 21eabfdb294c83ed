"""Load an adapter artifact folder onto its base model.

``load_folder`` is what :func:`lowres_adapters.load` runs once a Hub repo has been downloaded (or
directly, for a local folder). Order matters for safety: the metadata is read and the adapter type
resolved through the registry first, the saved tensors' shapes are checked against the base model
before any adapter weight is loaded, and nothing is unpickled. A downloaded folder is untrusted:
its ``base_model`` must be a Hub id or the embedded default (never a URL or a local path), and
every ``from_pretrained`` runs with ``trust_remote_code=False``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path as _Path, Path
from typing import Any, Callable

import torch

from lowres_adapters.artifact import (
    BASE_TENSOR_PREFIX,
    NEW_OUTPUT_ROWS_KEY,
    NEW_ROWS_KEY,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    ArtifactMetadata,
    build_config,
    check_shapes,
    read_metadata,
    read_tensors,
)
from lowres_adapters.base_identity import check_base_fingerprint
from lowres_adapters.devices import choose_device
from lowres_adapters.errors import LowresError
from lowres_adapters.models import is_embedded, load_base_model
from lowres_adapters.registry import Registry
from lowres_adapters.specs import NAME_PATTERN
from lowres_adapters.task_loading import TaskModel, is_task_folder, load_task_stack, stack_options

VOCABULARY_MODULE = "lowres_adapters.training.vocabulary"
HUB_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
"""A Hub model id (``owner/name`` or a legacy ``name``): no scheme, no absolute or ``..`` path."""
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")


@dataclass
class LoadedAdapter:
    """A base model with an adapter attached and active.

    Attributes:
        model: The module to call (``handle.model``; for a task run a
            :class:`~lowres_adapters.task_loading.TaskModel`), in eval mode.
        tokenizer: The tokenizer to use with it (the extended one when the vocabulary was extended).
        handle: The :class:`~lowres_adapters.specs.AttachedAdapter` handle (for a task run, its stack).
        metadata: The artifact's ``lowres_adapter.json``.
    """

    model: Any
    tokenizer: Any
    handle: Any
    metadata: ArtifactMetadata


def load_folder(directory: str | Path, *, model: str | None = None, allow_pickle: bool = False,
                registry: Registry | None = None, trusted: bool = True,
                say: Callable[[str], None] | None = None, task_head: bool = True,
                device: str | None = None) -> LoadedAdapter:
    """Load the base model named in an artifact folder, restore its vocabulary and attach the adapter.

    A task run (``task_head.json``) comes back whole: base + language adapter(s) + task adapter +
    head as a :class:`~lowres_adapters.task_loading.TaskModel` (or, with ``task_head=False``, the
    stacked language model without the head, e.g. to score held-out text).

    Args:
        directory: An artifact folder (run folder or downloaded Hub snapshot). Base-model tensors the
            run trained besides the adapter (``lowres.base.*``) are put back too.
        model: Base model id or folder to use instead of the one recorded in the metadata (e.g. a
            local copy); it must have the same shapes.
        allow_pickle: Allow the base model's weights to be pickled ``.bin`` files. Off by default:
            only safetensors are read.
        registry: Registry to resolve the adapter type in (the process-wide one by default).
        trusted: False for a folder downloaded from the Hub: its recorded base model must then be a
            Hub id or the embedded default (a local path is honoured only through ``model=``).
        say: Where the one-line warning goes when the base model's fingerprint differs from the
            recorded one (stderr by default); the load goes on (e.g. a deliberate ``model=``).
        task_head: For a task run, return the task model (True) or the language model under it.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` to put the model on
            (:func:`~lowres_adapters.devices.choose_device`); None leaves it on the CPU.

    Returns:
        A :class:`LoadedAdapter`.

    Raises:
        LowresError: Missing or invalid files, an adapter type that is not installed (naming the
            pip package), or a base model whose shapes do not match the adapter.
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    if not trusted:
        check_untrusted_metadata(metadata, str(directory / "lowres_adapter.json"), base_given=model is not None)
    build_config(metadata, registry)  # fail on a missing plugin before loading any model
    tensors = read_tensors(directory)  # fail on a corrupt file before loading any model
    model_id = model or metadata.base_model
    revision = metadata.base_model_revision if model is None else None
    base, tokenizer = load_base_model(model_id, metadata.objective, revision=revision,
                                      safetensors_only=not allow_pickle)
    check_base_fingerprint(base, metadata, str(directory), say)
    if is_task_folder(directory):
        return _placed(_load_task(directory, base, tokenizer, metadata, trusted, task_head), device)
    if metadata.vocabulary:
        check_vocabulary_shapes(base, metadata, tensors, str(directory))
        tokenizer = _restore_vocabulary(base, directory)
    handle = _attach_checked(base, metadata, tensors, str(directory / WEIGHTS_FILE), registry)
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return _placed(LoadedAdapter(model=handle.model, tokenizer=tokenizer, handle=handle, metadata=metadata), device)


def _placed(loaded: Any, device: str | None) -> Any:
    """Return ``loaded`` with its model moved to ``device`` (unchanged for None)."""
    if device is not None:
        loaded.model.to(choose_device(device))
    return loaded


def _load_task(directory: Path, base: Any, tokenizer: Any, metadata: ArtifactMetadata, trusted: bool,
               task_head: bool) -> LoadedAdapter:
    """Rebuild a task run on ``base``: a :class:`~lowres_adapters.task_loading.TaskModel`, or its backbone."""
    if not trusted:
        for folder in stack_options(directory, trusted)[0]:
            language = read_metadata(folder)
            check_untrusted_metadata(language, str(folder / "lowres_adapter.json"), base_given=True)
    handle, head, task_tokenizer, task = load_task_stack(directory, base, trusted=trusted)
    tokenizer = task_tokenizer if task_tokenizer is not None else tokenizer
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model = TaskModel(handle.model, head, task).eval() if task_head else handle.model
    return LoadedAdapter(model=model, tokenizer=tokenizer, handle=handle, metadata=metadata)


def check_untrusted_metadata(metadata: ArtifactMetadata, where: str, base_given: bool) -> None:
    """Refuse metadata of a downloaded artifact that would make ``load`` reach a host or read a local path.

    Raises:
        LowresError: ``base_model`` is not a Hub id nor the embedded default (a URL, an absolute or
            ``..`` path, or a name that exists as a local path), its revision is malformed, or the
            adapter name is not a plain name.
    """
    if not isinstance(metadata.adapter_name, str) or not NAME_PATTERN.match(metadata.adapter_name):
        raise LowresError(f"{where}: adapter_name {metadata.adapter_name!r} must match {NAME_PATTERN.pattern}")
    if base_given:
        return
    base = metadata.base_model
    if not isinstance(base, str) or not (is_embedded(base) or (HUB_MODEL_ID.match(base) and ".." not in base)):
        raise LowresError(f"{where}: base_model {base!r} is not a Hub model id; refusing it "
                          "(pass model= / --model to choose the base model yourself)")
    if not is_embedded(base) and _Path(base).exists():
        raise LowresError(f"{where}: base_model {base!r} names a local path; a downloaded adapter may not pick "
                          "local folders (pass model= / --model to use it)")
    revision = metadata.base_model_revision
    if revision is not None and (not isinstance(revision, str) or not REVISION.match(revision) or ".." in revision):
        raise LowresError(f"{where}: base_model_revision {revision!r} is not a revision name")


def _attach_checked(model: Any, metadata: ArtifactMetadata, tensors: dict[str, Any], where: str,
                    registry: Registry | None) -> Any:
    """Attach the adapter, check every saved tensor against the model, then load them and activate."""
    spec, config = build_config(metadata, registry)
    adapter_tensors = {name: tensor for name, tensor in tensors.items() if not name.startswith("lowres.")}
    trained_base = {name[len(BASE_TENSOR_PREFIX):]: tensor for name, tensor in tensors.items()
                    if name.startswith(BASE_TENSOR_PREFIX)}
    handle = spec.attach(model, metadata.adapter_name, config)
    check_shapes(handle.adapter_state_dict(), adapter_tensors, where)
    targets = check_base_tensors(handle.model, trained_base, where)
    handle.load_adapter_state_dict(adapter_tensors)
    _copy_base_tensors(targets, trained_base)
    handle.activate()
    handle.model.eval()
    return handle


def check_vocabulary_shapes(model: Any, metadata: ArtifactMetadata, tensors: dict[str, Any], where: str) -> None:
    """Raise one clear line when the saved new embedding rows cannot extend ``model``'s vocabulary."""
    vocabulary = metadata.vocabulary or {}
    embeddings = model.get_input_embeddings().weight  # (vocab, hidden)
    original = vocabulary.get("original_size")
    if original is not None and embeddings.shape[0] != original:
        raise LowresError(
            f"{where}: the adapter extends a vocabulary of {original} tokens, the base model has "
            f"{embeddings.shape[0]}: the adapter was trained on a different base model"
        )
    for key in (NEW_ROWS_KEY, NEW_OUTPUT_ROWS_KEY):
        rows = tensors.get(key)  # (added_tokens, hidden)
        if rows is None:
            continue
        if rows.ndim != 2 or rows.shape[1] != embeddings.shape[1]:
            raise LowresError(
                f"{where}: {key} has shape {tuple(rows.shape)}, the base model's hidden size is "
                f"{embeddings.shape[1]}: the adapter was trained on a different base model"
            )
    if NEW_ROWS_KEY not in tensors and vocabulary.get("added_tokens"):
        raise LowresError(f"{where}: the vocabulary was extended but adapter.safetensors has no {NEW_ROWS_KEY}")


def check_base_tensors(model: Any, trained_base: dict[str, Any], where: str) -> dict[str, Any]:
    """Return the parameters of ``model`` (names as ``handle.model`` has them) that saved base tensors go into.

    Raises:
        LowresError: A saved tensor names no parameter of ``model`` or has another shape.
    """
    parameters = dict(model.named_parameters())
    for name, tensor in trained_base.items():
        if name not in parameters:
            raise LowresError(f"{where}: trained base tensor {name} is not a parameter of this base model")
        if tuple(parameters[name].shape) != tuple(tensor.shape):
            raise LowresError(f"{where}: trained base tensor {name} has shape {tuple(tensor.shape)}, the base "
                              f"model needs {tuple(parameters[name].shape)}: it was trained on a different base model")
    return {name: parameters[name] for name in trained_base}


def _copy_base_tensors(targets: dict[str, Any], trained_base: dict[str, Any]) -> None:
    """Put the run's trained base-model tensors (``train_also``) back into their parameters."""
    with torch.no_grad():
        for name, tensor in trained_base.items():
            targets[name].copy_(tensor.to(targets[name].dtype))


def _restore_vocabulary(model: Any, directory: Path) -> Any:
    """Resize ``model``'s embeddings with the saved new rows and return the extended tokenizer."""
    if not (directory / TOKENIZER_DIR).is_dir():
        raise LowresError(f"{directory / TOKENIZER_DIR}: missing; the adapter extends the vocabulary")
    try:
        vocabulary = importlib.import_module(VOCABULARY_MODULE)
    except ModuleNotFoundError as error:
        if error.name != VOCABULARY_MODULE:
            raise
        raise LowresError("this adapter extends the vocabulary, which this lowres-adapters build cannot "
                          "restore: pip install -U lowres-adapters") from None
    return vocabulary.restore_extended_vocabulary(model, directory)
