"""The ``language`` recipe: a language adapter trained on free text.

Masked LM (15% of tokens, 80/10/10) for encoders, causal LM for decoders. Encoder defaults are
the paper's (arXiv 2502.10140): lr 1e-4, batch 16, one sentence per example, 100k steps. The
decoder defaults are chosen for the embedded SmolLM2-135M so that about three minutes on a 2-core
CPU give a good adapter (the demo sweep, docs/training.md): LoRA r=16 on every linear layer of the
top half of the blocks, lr 5e-3, 250 steps of 2 rows of 128 tokens, 5% warm-up, cosine decay to
10%. Both run on the fast path (:func:`~lowres_adapters.training.speed.fast_text_defaults`):
verses are packed into rows of ``max_length`` tokens, so a row holds about 2 verses.

A ``--text`` file (a :class:`~lowres_adapters.data.text.TextFile`, of any size) never becomes a
list: with the token cache on (the default) it is tokenised segment by segment into the on-disk
token store (:mod:`~lowres_adapters.training.token_segments`, reused by later runs of the same
file and tokenizer) and trained on from the memory map as soon as the first segment is ready. A
``--text hf:...`` dataset (:class:`~lowres_adapters.data.dataset_text.DatasetText`) streams in one
pass into the token store, keyed by the dataset's fingerprint, and trains from its memory map.
"""

from __future__ import annotations

import functools
import itertools
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from lowres_adapters.data.dataset_text import DatasetText
from lowres_adapters.data.examples import TextExample
from lowres_adapters.data.text import TextFile
from lowres_adapters.training.lm_objectives import LMObjective
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.objectives import MASK_PROBABILITY
from lowres_adapters.training.recipes.base import Recipe, RecipeContext, split_validation
from lowres_adapters.training.speed import cached_text_features, fast_text_defaults, speed_up_for_loop
from lowres_adapters.training.segment_features import HELD_OUT_MAX, HELD_OUT_SHARE, SegmentedFeatures
from lowres_adapters.training.token_segments import SegmentedStore
from lowres_adapters.training.token_store import TokenCacheFeatures, stream_token_cache

ENCODER_DEFAULTS = {"lr": 1e-4, "batch_size": 16, "max_length": 128, "max_steps": 100_000,
                    "schedule": "linear", "warmup_ratio": 0.0}
DECODER_DEFAULTS = {"lr": 5e-3, "batch_size": 2, "max_length": 128, "max_steps": 250,
                    "schedule": "cosine", "warmup_ratio": 0.05, "min_lr_ratio": 0.1}
"""Measured on SmolLM2-135M / Chichewa (benchmarks/demo_sweep.py, docs/training.md): with LoRA on
the top half's linear layers, 250 steps of 2 packed rows beat 140 of 4 and 70 of 8 at equal time."""
DECODER_LORA = {"r": 16, "alpha": 32, "attn_matrices": ("q", "k", "v"), "intermediate_lora": True,
                "output_lora": True}
"""LoRA of the decoder text recipes: every linear layer of a block, rank 16 (the demo sweep's best);
:func:`decoder_lora_defaults` adds the layers left out."""


def decoder_lora_defaults(adapter: str, masked: bool, num_layers: int | None) -> dict[str, Any]:
    """Return the text recipes' default ``adapter_config`` for ``adapter`` on a decoder of ``num_layers``.

    For ``lora`` on a causal LM: :data:`DECODER_LORA` in the top half of the blocks only (the bottom
    half left out): the backward pass then stops half-way down, 0.645x the time of a step over every
    layer on SmolLM2-135M, for a lower held-out bits/char at equal time (docs/training.md). Anything
    else: no defaults (the adapter type's own).
    """
    if adapter != "lora" or masked:
        return {}
    return {**DECODER_LORA, "leave_out": tuple(range((num_layers or 0) // 2))}


@dataclass(frozen=True)
class LanguageOptions:
    """Options of the ``language`` recipe.

    Attributes:
        mask_probability: Share of tokens predicted in masked LM (encoders only).
    """

    mask_probability: float = MASK_PROBABILITY

    def __post_init__(self) -> None:
        if not 0 < self.mask_probability < 1:
            raise ValueError("mask_probability must be in (0, 1)")


def text_job(context: RecipeContext, train: Sequence[TextExample], validation: Sequence[TextExample],
             name: str, mask_probability: float = MASK_PROBABILITY) -> TrainingJob:
    """Return a job training the adapter with the model's own objective on ``train`` texts."""
    max_length, objective = context.loop.max_length, context.objective
    if context.loop.token_cache:  # the whole text, tokenised once and memory-mapped afterwards
        features: Any = cached_text_features(objective, context.tokenizer, [e.text for e in train], max_length)
    else:
        features = objective.lazy_features(context.tokenizer, (e.text for e in train), max_length)
    eval_features = None
    if context.loop.eval_every and validation:
        texts = (e.text for e in list(validation)[: context.loop.eval_examples])
        eval_features = objective.tokenize(context.tokenizer, texts, max_length)
    return features_job(context, features, eval_features, name, mask_probability)


def file_text_job(context: RecipeContext, corpus: TextFile, name: str,
                  mask_probability: float = MASK_PROBABILITY) -> TrainingJob:
    """Return the job on a text file streamed through the token store, segment by segment.

    The store's first segment is tokenised before this returns; the rest in the background while
    training runs (:mod:`~lowres_adapters.training.segment_features`). ``max_train_examples`` keeps
    the file's first N examples, and a run that evaluates holds out the last 5% (at most 200) of the
    first segment, whose first ``eval_examples`` it scores: a file of one segment (up to 4 M
    characters) therefore trains and evaluates exactly as the in-memory path does.
    """
    store = SegmentedStore(corpus.path, context.tokenizer, type(context.objective).tokenize_function,
                           context.loop.max_length, sha256=corpus.sha256, tokenise=context.process.is_main,
                           report=context.process.is_main)
    features, validation = SegmentedFeatures.with_held_out(
        store, limit=context.settings.data.max_train_examples, evaluate=bool(context.loop.eval_every))
    if context.process.is_main:
        print(f"training text {corpus.path}: {_describe_store(store)}", file=sys.stderr)
    eval_features = None
    if validation is not None:
        eval_features = [validation[i] for i in range(min(len(validation), context.loop.eval_examples))]
    return features_job(context, features, eval_features, name, mask_probability)


def dataset_text_job(context: RecipeContext, corpus: DatasetText, name: str,
                     mask_probability: float = MASK_PROBABILITY) -> TrainingJob:
    """Return the job on a ``datasets`` split tokenised in one streaming pass into the token store.

    The entry is keyed by the dataset's content (:attr:`DatasetText.content_key`), so a later run on
    the same dataset and tokenizer reuses it and a changed dataset is tokenised again. Examples are
    kept and held out as :func:`file_text_job` keeps them from a file of one segment: the first
    ``max_train_examples`` (the pass stops there), and the last 5% (at most 200) of them held out
    when the run evaluates.
    """
    limit = context.settings.data.max_train_examples
    texts, key = corpus.texts(), f"dataset:{corpus.content_key}"
    if limit is not None:  # the pass reads the first rows only (each non-blank text is one example or more)
        texts, key = itertools.islice(texts, limit), f"{key}:first:{limit}"
    tokenise = functools.partial(stream_token_cache, texts, context.tokenizer,
                                 type(context.objective).tokenize_function, context.loop.max_length, source_key=key)
    if context.process.is_main:  # one pass; in a multi-process run the others then read its entry
        features, from_cache = tokenise()
    context.process.barrier()
    if not context.process.is_main:
        features, from_cache = tokenise()
    kept = features.select(0, limit) if limit is not None else features
    held_out = min(HELD_OUT_MAX, int(len(kept) * HELD_OUT_SHARE)) if context.loop.eval_every else 0
    eval_features = None
    if held_out >= 1:
        validation = kept.select(len(kept) - held_out, len(kept))
        eval_features = [validation[i] for i in range(min(len(validation), context.loop.eval_examples))]
        kept = kept.select(0, len(kept) - held_out)
    if context.process.is_main:
        print(f"training text {corpus.provenance.detail}: {len(features):,} examples, {features.token_count:,} "
              f"tokens ({'token cache reused' if from_cache else 'tokenised into the token cache'})", file=sys.stderr)
    return features_job(context, kept, eval_features, name, mask_probability)


def _describe_store(store: SegmentedStore) -> str:
    """Return how far the store of a training text is, e.g. ``3 segments, 12,000 examples, ... (token cache reused)``."""
    first = store.segment(0)
    assert first is not None
    if store.complete:
        segments = [store.segment(index) for index in range(store.count or 1)]
        examples, tokens = sum(len(part) for part in segments), sum(part.token_count for part in segments)
        return (f"{examples:,} examples, {tokens:,} tokens in {len(segments)} segment(s) "
                f"({'token cache reused' if store.from_cache else 'tokenised into the token cache'})")
    return (f"segment 1 tokenised ({len(first):,} examples, {first.token_count:,} tokens); "
            "the rest is tokenised into the token cache in the background while training runs")


def features_job(context: RecipeContext, features: Sequence[Any] | TokenCacheFeatures, eval_features: Any,
                 name: str, mask_probability: float = MASK_PROBABILITY) -> TrainingJob:
    """Return the job on tokenised ``features``, with the loop's speed options applied."""
    objective = context.objective
    job = TrainingJob(model=context.handle.model, parameters=context.trained_parameters(), train_features=features,
                      collate=objective.collator(context.tokenizer, mask_probability), loss_fn=objective.loss,
                      eval_features=eval_features, name=name, freezing=context.freezing())
    # Packing, masked-only logits, vocabulary trimming... when the loop settings ask for them.
    return speed_up_for_loop(job, context.loop, objective=context.objective, tokenizer=context.tokenizer)


class LanguageRecipe(Recipe):
    """Train a language adapter on the language's free text (MLM for encoders, CLM for decoders)."""

    name = "language"
    description = "language adapter on free text (MLM for encoders, CLM for decoders)"
    options_class = LanguageOptions
    cache_base_scores = True
    needs = ("text",)

    def loop_defaults(self, objective: LMObjective) -> dict[str, Any]:
        """Return the paper's encoder defaults or the SmolLM2-tuned decoder defaults, on the fast path
        (packing, masked-only logits, trimmed vocabulary, token cache, native bf16)."""
        return {**fast_text_defaults(), **(ENCODER_DEFAULTS if objective.masked else DECODER_DEFAULTS)}

    def adapter_defaults(self, context: RecipeContext) -> dict[str, Any]:
        """Return :func:`decoder_lora_defaults` for the run's adapter and model."""
        return decoder_lora_defaults(context.settings.adapter, context.objective.masked,
                                     getattr(context.model.config, "num_hidden_layers", None))

    def training_texts(self, context: RecipeContext) -> tuple[list[TextExample], list[TextExample]]:
        """Return ``(train, validation)`` text examples (validation held out only when evaluating)."""
        train = list(context.data.text["train"])
        limit = context.settings.data.max_train_examples
        if limit is not None:
            train = train[:limit]
        if not context.loop.eval_every:
            return train, []
        return split_validation(train, context.data)

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the masked/causal LM job on the training text (a ``--text`` file through the token store)."""
        if self.streams_file(context):
            corpus = context.data.text["train"]
            if isinstance(corpus, DatasetText):
                return dataset_text_job(context, corpus, self.name, context.options.mask_probability)
            return file_text_job(context, corpus, self.name, context.options.mask_probability)
        train, validation = self.training_texts(context)
        return text_job(context, train, validation, self.name, context.options.mask_probability)

    def streams_file(self, context: RecipeContext) -> bool:
        """Return whether the training text is a ``--text`` file or dataset trained on as it is, streamed
        through the token store (the token cache on). A recipe that changes the training texts (overrides
        :meth:`training_texts`, e.g. to mix other texts in) gets them as a list instead."""
        return (isinstance(context.data.text.get("train"), (TextFile, DatasetText)) and context.loop.token_cache
                and type(self).training_texts is LanguageRecipe.training_texts)

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the names of the corpora trained on (a ``--text`` file's or dataset's name without reading it)."""
        corpus = context.data.text.get("train")
        if isinstance(corpus, (TextFile, DatasetText)):
            return [corpus.provenance.source]
        return super().datasets(context)
