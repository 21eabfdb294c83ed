"""Load an adapter artifact folder onto its base model.

``load_folder`` is what :func:`lowres_adapters.load` runs once a Hub repo has been downloaded (or
directly, for a local folder). Order matters for safety: the metadata is read and the adapter type
resolved through the registry first, the saved tensors' shapes are checked against the base model
before any adapter weight is loaded, and nothing is unpickled.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowres_adapters.artifact import (
    NEW_OUTPUT_ROWS_KEY,
    NEW_ROWS_KEY,
    TOKENIZER_DIR,
    ArtifactMetadata,
    attach_from_artifact,
    build_config,
    read_metadata,
    read_tensors,
)
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import Registry

VOCABULARY_MODULE = "lowres_adapters.training.vocabulary"


@dataclass
class LoadedAdapter:
    """A base model with an adapter attached and active.

    Attributes:
        model: The module to call (``handle.model``), in eval mode.
        tokenizer: The tokenizer to use with it (the extended one when the vocabulary was extended).
        handle: The :class:`~lowres_adapters.specs.AttachedAdapter` handle.
        metadata: The artifact's ``lowres_adapter.json``.
    """

    model: Any
    tokenizer: Any
    handle: Any
    metadata: ArtifactMetadata


def load_folder(directory: str | Path, *, model: str | None = None, allow_pickle: bool = False,
                registry: Registry | None = None) -> LoadedAdapter:
    """Load the base model named in an artifact folder, restore its vocabulary and attach the adapter.

    Args:
        directory: An artifact folder (run folder or downloaded Hub snapshot).
        model: Base model id or folder to use instead of the one recorded in the metadata (e.g. a
            local copy); it must have the same shapes.
        allow_pickle: Allow the base model's weights to be pickled ``.bin`` files. Off by default:
            only safetensors are read.
        registry: Registry to resolve the adapter type in (the process-wide one by default).

    Returns:
        A :class:`LoadedAdapter`.

    Raises:
        LowresError: Missing or invalid files, an adapter type that is not installed (naming the
            pip package), or a base model whose shapes do not match the adapter.
    """
    from lowres_adapters.models import load_base_model

    directory = Path(directory)
    metadata = read_metadata(directory)
    build_config(metadata, registry)  # fail on a missing plugin before loading any model
    tensors = read_tensors(directory)  # fail on a corrupt file before loading any model
    model_id = model or metadata.base_model
    revision = metadata.base_model_revision if model is None else None
    base, tokenizer = load_base_model(model_id, metadata.objective, revision=revision,
                                      safetensors_only=not allow_pickle)
    if metadata.vocabulary:
        check_vocabulary_shapes(base, metadata, tensors, str(directory))
        tokenizer = _restore_vocabulary(base, directory)
    handle = attach_from_artifact(base, directory, registry)
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedAdapter(model=handle.model, tokenizer=tokenizer, handle=handle, metadata=metadata)


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
