"""Vocabulary extension: new tokens for the target script, trained rows, saved alone with the adapter.

1. :func:`~lowres_adapters.training.vocabulary_tokenizer.extend_tokenizer` learns up to N new
   pieces from the target text with ``tokenizers`` and appends them to the base tokenizer.
2. :func:`extend_model` appends one row per new piece, initialised as the mean of the embeddings
   of the piece's old sub-tokens, in a separate parameter: only those rows train (with the
   adapter). A tied output head shares them; an untied one gets rows of its own (mean of the old
   output rows). The output head scores the extended vocabulary (AdapterHub's ``add_embeddings``
   leaves the masked-LM head at the old size).
3. The artifact stores only the new rows (``artifact.NEW_ROWS_KEY``, ``NEW_OUTPUT_ROWS_KEY``, and
   :data:`NEW_OUTPUT_BIAS_KEY` for heads with a bias) and the tokenizer under ``tokenizer/``;
   :func:`restore_extended_vocabulary` rebuilds the extended model from the base model.

Extend the vocabulary before attaching adapters: the soft prompt wraps the model, and AdapterHub
hooks the embedding layer when it is initialised (hooks are carried over to the new layer anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn
from transformers import AutoTokenizer

from lowres_adapters.artifact import NEW_OUTPUT_ROWS_KEY, NEW_ROWS_KEY, TOKENIZER_DIR, read_metadata, read_tensors
from lowres_adapters.errors import LowresError
from lowres_adapters.training.vocabulary_modules import ExtendedEmbedding, ExtendedOutputHead, replace_module
from lowres_adapters.training.vocabulary_tokenizer import (
    TokenizerExtension,
    extend_tokenizer,
    old_subtoken_ids,
    tokens_per_character,
)

NEW_OUTPUT_BIAS_KEY = "lowres.new_output_bias"
"""(added,) output bias of the new rows, for heads with a bias (masked-LM heads); not trained."""

__all__ = [
    "ExtendedVocabulary", "NEW_OUTPUT_BIAS_KEY", "TokenizerExtension", "extend_for_run", "extend_model",
    "extend_tokenizer", "extend_vocabulary", "restore_extended_vocabulary", "tokens_per_character",
]


@dataclass
class ExtendedVocabulary:
    """A model whose vocabulary was extended, and the rows that train.

    Attributes:
        tokenizer: The extended tokenizer.
        original_size: Vocabulary size before.
        new_rows: (added, hidden) input-embedding rows (shared by a tied output head).
        new_output_rows: (added, hidden) rows of an untied output head, else None.
        new_output_bias: (added,) output bias of the new rows when the head has a bias, else None.
    """

    tokenizer: Any
    original_size: int
    new_rows: Any
    new_output_rows: Any = None
    new_output_bias: Any = None

    @property
    def added_tokens(self) -> int:
        """Return the number of new tokens."""
        return int(self.new_rows.shape[0])

    def trainable_parameters(self) -> dict[str, Any]:
        """Return the new rows, to train next to the adapter's parameters, keyed by artifact key."""
        parameters = {NEW_ROWS_KEY: self.new_rows}
        if self.new_output_rows is not None:
            parameters[NEW_OUTPUT_ROWS_KEY] = self.new_output_rows
        return parameters

    def enable_training(self) -> None:
        """Make the new rows trainable (an adapter's ``activate()`` freezes everything it does not own)."""
        for parameter in self.trainable_parameters().values():
            parameter.requires_grad_(True)

    def state_tensors(self) -> dict[str, Any]:
        """Return what the artifact stores (``extra_tensors`` of ``write_artifact``): only new rows."""
        tensors = {key: parameter.detach() for key, parameter in self.trainable_parameters().items()}
        if self.new_output_bias is not None:
            tensors[NEW_OUTPUT_BIAS_KEY] = self.new_output_bias.detach()
        return tensors

    def metadata(self) -> dict[str, int]:
        """Return the value of ``ArtifactMetadata.vocabulary``."""
        return {"original_size": self.original_size, "added_tokens": self.added_tokens}


def _mean_rows(matrix: Any, groups: Sequence[Sequence[int]]) -> Any:
    """Return (len(groups), ...) means of ``matrix`` rows, one per group of old ids."""
    rows = [matrix[list(ids)].float().mean(dim=0) if ids else matrix.float().mean(dim=0) for ids in groups]
    return torch.stack(rows).to(matrix.dtype)  # (added, hidden) or (added,) for a bias


def _as_parameter(values: Any, like: Any) -> Any:
    return nn.Parameter(values.detach().clone().to(device=like.device, dtype=like.dtype))


def extend_model(model: Any, extension: TokenizerExtension, base_tokenizer: Any = None,
                 saved: Mapping[str, Any] | None = None) -> ExtendedVocabulary:
    """Append the new tokens' rows to ``model``'s input embeddings and output head, in place.

    Args:
        model: A transformers model with the base vocabulary (``original_size`` rows).
        extension: What ``extend_tokenizer`` returned.
        base_tokenizer: The base tokenizer, to find each new piece's old sub-tokens; not needed
            when ``saved`` holds every row.
        saved: Saved tensors (artifact keys) to use instead of the sub-token means.

    Returns:
        The extension; its rows are trainable, every original weight is left as it was.
    """
    saved = dict(saved or {})
    embeddings = model.get_input_embeddings()
    if not isinstance(embeddings, nn.Embedding) or embeddings.num_embeddings != extension.original_size:
        raise LowresError(f"the model's input embeddings have {getattr(embeddings, 'num_embeddings', '?')} rows; "
                          f"the vocabulary extension was made for {extension.original_size}")
    groups: list[list[int]] | None = None

    def sub_token_means(matrix: Any) -> Any:
        nonlocal groups
        if base_tokenizer is None:
            raise LowresError("the base tokenizer is needed to initialise new vocabulary rows")
        if groups is None:
            groups = old_subtoken_ids(base_tokenizer, extension.added_pieces)
        with torch.no_grad():
            return _mean_rows(matrix, groups)

    rows = _as_parameter(saved[NEW_ROWS_KEY] if NEW_ROWS_KEY in saved else sub_token_means(embeddings.weight),
                         embeddings.weight)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    output_rows = output_bias = None
    if output is not None:
        if not isinstance(output, nn.Linear):
            raise LowresError(f"cannot extend an output head of type {type(output).__name__}")
        head_rows = rows
        if output.weight is not embeddings.weight:  # untied head: rows of its own
            output_rows = _as_parameter(saved[NEW_OUTPUT_ROWS_KEY] if NEW_OUTPUT_ROWS_KEY in saved
                                        else sub_token_means(output.weight), output.weight)
            head_rows = output_rows
        if output.bias is not None:
            output_bias = (saved[NEW_OUTPUT_BIAS_KEY] if NEW_OUTPUT_BIAS_KEY in saved
                           else sub_token_means(output.bias)).detach().to(output.bias.device, output.bias.dtype)
        replace_module(model, output, ExtendedOutputHead(output, head_rows, output_bias))
    replace_module(model, embeddings, ExtendedEmbedding(embeddings, rows))
    model.config.vocab_size = extension.original_size + rows.shape[0]
    return ExtendedVocabulary(extension.tokenizer, extension.original_size, rows, output_rows, output_bias)


def extend_vocabulary(model: Any, tokenizer: Any, texts: Iterable[str], num_tokens: int,
                      **options: Any) -> ExtendedVocabulary:
    """Train up to ``num_tokens`` new tokens on ``texts`` and extend ``model`` with them.

    Args:
        model: The base model, before adapters are attached.
        tokenizer: Its tokenizer.
        texts: Target-language training text.
        num_tokens: How many tokens to add at most.
        options: Passed to ``extend_tokenizer`` (``min_frequency``, ``script_only``).
    """
    extension = extend_tokenizer(tokenizer, texts, num_tokens, **options)
    return extend_model(model, extension, tokenizer)


def restore_extended_vocabulary(model: Any, directory: Path) -> Any:
    """Rebuild the extended model from the base ``model`` and the rows saved in an artifact folder.

    Call it on the freshly loaded base model, before attaching the adapter. The restored rows are
    frozen (call ``ExtendedVocabulary.enable_training`` through :func:`extend_model` to train on).

    Args:
        model: The base model (original vocabulary), changed in place.
        directory: An artifact / run folder.

    Returns:
        The extended tokenizer from ``directory/tokenizer``, or None when the artifact did not
        extend the vocabulary (the base tokenizer applies).
    """
    directory = Path(directory)
    vocabulary = read_metadata(directory).vocabulary
    if not vocabulary:
        return None
    tokenizer_dir = directory / TOKENIZER_DIR
    if not tokenizer_dir.is_dir():
        raise LowresError(f"{tokenizer_dir}: missing; the artifact extended the vocabulary but has no tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=False)
    except (OSError, ValueError) as error:
        text = str(error).strip()
        raise LowresError(f"{tokenizer_dir}: cannot load the extended tokenizer "
                          f"({text.splitlines()[0] if text else type(error).__name__})") from None
    tensors = {key: value for key, value in read_tensors(directory).items()
               if key in (NEW_ROWS_KEY, NEW_OUTPUT_ROWS_KEY, NEW_OUTPUT_BIAS_KEY)}
    original, added = int(vocabulary["original_size"]), int(vocabulary["added_tokens"])
    hidden = model.get_input_embeddings().weight.shape[1]
    rows = tensors.get(NEW_ROWS_KEY)
    if rows is None:
        raise LowresError(f"{directory}: adapter.safetensors has no {NEW_ROWS_KEY} although the vocabulary was extended")
    if tuple(rows.shape) != (added, hidden) or len(tokenizer) != original + added:
        raise LowresError(f"{directory}: {NEW_ROWS_KEY} has shape {tuple(rows.shape)} and the tokenizer "
                          f"{len(tokenizer)} tokens; expected ({added}, {hidden}) and {original + added}")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    untied = output is not None and output.weight is not model.get_input_embeddings().weight
    needed = [NEW_OUTPUT_ROWS_KEY] * untied + [NEW_OUTPUT_BIAS_KEY] * (output is not None and output.bias is not None)
    missing = [key for key in needed if key not in tensors]
    if missing:
        raise LowresError(f"{directory}: adapter.safetensors lacks {', '.join(missing)} that this model's head needs")
    extension = TokenizerExtension(tokenizer, original, [f"<new {index}>" for index in range(added)])
    extended = extend_model(model, extension, saved=tensors)
    for parameter in extended.trainable_parameters().values():
        parameter.requires_grad_(False)
    return tokenizer


def extend_for_run(context: Any, num_tokens: int) -> ExtendedVocabulary:
    """Extend the vocabulary of a run (``lowres adapt --extend-vocab N``) before its adapter is attached.

    Trains the new tokens on the run's training text (the target side of the training pairs when
    there is no text), extends ``context.model`` in place and puts the extended tokenizer in
    ``context.tokenizer``. ``context.vocabulary`` makes the new rows train with the adapter and
    be saved with it; ``context.state["vocabulary"]`` makes the run folder record the vocabulary
    and save the tokenizer.

    Args:
        context: The run's :class:`~lowres_adapters.training.recipes.base.RecipeContext`.
        num_tokens: How many tokens to add at most.
    """
    texts = [example.text for example in context.data.text.get("train", [])]
    if not texts:
        texts = [pair.target if pair.target_lang == context.language else pair.source
                 for pair in context.data.pairs.get("train", [])]
    if not texts:
        raise LowresError(f"--extend-vocab needs training text or pairs in {context.language}")
    extended = extend_vocabulary(context.model, context.tokenizer, texts, num_tokens)
    context.tokenizer = extended.tokenizer
    context.vocabulary = extended
    context.state["vocabulary"] = extended.metadata()
    return extended
