"""Speed options for the training loop, applied to a recipe's job without changing what it learns.

:func:`speed_up_job` takes the :class:`~lowres_adapters.training.loop.TrainingJob` a recipe built
(plain collator, plain loss) and returns one that packs examples, scores only labelled positions
over the corpus's own vocabulary, and optionally runs under bf16 autocast, ``torch.compile`` or
gradient checkpointing. Each option is tested to give the plain path's loss on the same batch
(``tests/test_fast_*.py``, ``tests/test_packing.py``); which ones pay on a CPU is measured by
``lowres bench`` (``docs/bench.md``). :func:`fast_text_defaults` is what the free-text recipes
(``language``, ``graph``, ``cpt``) run with unless the user turns a switch off: packing,
masked-only logits, vocabulary trimming with sampled negatives, the token cache, and bf16
autocast where the CPU multiplies bf16 natively; compile and checkpointing stay off.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from lowres_adapters.training.segment_features import SegmentedFeatures
from lowres_adapters.training.token_store import TokenCacheFeatures
from lowres_adapters.data.token_cache import cached_features
from lowres_adapters.errors import LowresError
from lowres_adapters.training.fast_lm import IGNORE_INDEX, VocabularyTrim, split_lm_model
from lowres_adapters.training.lm_objectives import LMObjective, objective_named
from lowres_adapters.training.loop_settings import SpeedSettings
from lowres_adapters.training.packing import PackedCollator, isolates_packed_examples, pack_features

Feature = dict[str, list[int]]


SpeedOptions = SpeedSettings
"""The speed switches :func:`speed_up_job` applies (the loop settings' ``speed`` concern)."""


def native_bf16() -> bool:
    """Return True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX): bf16 pays there."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))


def fast_text_defaults() -> dict[str, Any]:
    """Return the loop switches the free-text recipes default to: :meth:`SpeedSettings.fast`, with
    bf16 where the CPU multiplies it natively (what each switch gains: ``docs/bench.md``)."""
    return dataclasses.asdict(SpeedSettings.fast(bf16=native_bf16()))


def speed_up_for_loop(job: Any, loop: Any, *, objective: str | LMObjective, tokenizer: Any) -> Any:
    """Return ``job`` with the speed options of ``loop`` (LoopSettings) applied.

    Models whose LM head cannot be separated (e.g. a soft-prompt wrapper) keep the plain
    collator and loss, and a model whose attention would let packed examples see each other
    (:func:`~lowres_adapters.training.packing.isolates_packed_examples`) is not packed; a note on
    stderr says so.
    """
    objective = objective_named(objective)
    options = loop.speed
    if not options.any:
        return job
    if options.vocab_trim and _trains_output_matrix(job):
        print(f"note: vocabulary trimming off for {job.name}: the output matrix trains, and every row of "
              "it must learn (a trimmed softmax would leave unused rows untouched)", file=sys.stderr)
        options = options.replace(vocab_trim=False)
    if options.packing or options.masked_only_logits:
        try:
            split_lm_model(job.model)
        except LowresError as error:
            print(f"note: packing / masked-only logits off for {job.name}: {error}", file=sys.stderr)
            options = options.replace(packing=False, masked_only_logits=False, vocab_trim=False)
    if options.packing:
        model = _transformers_model(job.model)
        collator = PackedCollator.for_model(objective, model, tokenizer)
        if not isolates_packed_examples(job.model, collator, model.get_output_embeddings().out_features):
            print(f"note: packing off for {job.name}: {type(model).__name__} lets packed examples attend to "
                  "each other (it ignores the restarted position_ids / per-example attention mask)", file=sys.stderr)
            options = options.replace(packing=False)
    return speed_up_job(job, options, objective=objective, tokenizer=tokenizer, row_length=loop.max_length)


def _trains_output_matrix(job: Any) -> bool:
    """Return True when the LM head's weight (tied or not) is among the job's trained parameters."""
    get_head = getattr(_transformers_model(job.model), "get_output_embeddings", None)
    weight = getattr(get_head(), "weight", None) if callable(get_head) else None
    return weight is not None and any(parameter is weight for parameter in job.parameters.values())


def vocabulary_trim_for(features: Iterable[Mapping[str, Any]], vocab_size: int,
                        always_keep: Iterable[int] = ()) -> VocabularyTrim:
    """Return the trim keeping every id a feature predicts (its labels, or its input ids)."""
    targets = []
    for feature in features:
        labels = feature.get("labels", feature["input_ids"])
        targets.append([token for token in labels if token != IGNORE_INDEX])
    return VocabularyTrim.from_token_ids(targets, vocab_size, always_keep=always_keep)


def _training_trim(features: Any, vocab_size: int, special_ids: Iterable[int], on_disk: bool) -> VocabularyTrim:
    """Return the trim keeping every id the training features use.

    A segmented store's later segments are not tokenised before training starts, so its trim keeps
    the first segment's ids and widens each scoring to the batch's targets: it never depends on how
    far the tokenising pass got.
    """
    if not on_disk:
        return vocabulary_trim_for(features, vocab_size, always_keep=special_ids)
    trim = VocabularyTrim.from_token_ids([features.unique_ids().tolist()], vocab_size, always_keep=special_ids)
    if getattr(features, "vocabulary_is_partial", False):
        print("note: vocabulary trim: the first segment's ids, widened per batch to its targets (the text's later "
              "segments are tokenised in the background)", file=sys.stderr)
        trim = dataclasses.replace(trim, widen_to_targets=True)
    return trim


def count_real_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    """Return the real (non-padding) input tokens of a plain or packed batch."""
    if "token_mask" in batch:
        return int(batch["token_mask"].sum())
    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        return int(mask.sum())
    return int(batch["input_ids"].numel())


def speed_up_job(job: Any, options: SpeedOptions, *, objective: str | LMObjective, tokenizer: Any,
                 row_length: int) -> Any:
    """Return ``job`` with the collator, loss and model set up for ``options``.

    Args:
        job: A :class:`~lowres_adapters.training.loop.TrainingJob` with plain features and loss.
        options: Which optimisations to apply.
        objective: The model's objective (or its name, ``"clm"`` / ``"mlm"``).
        tokenizer: The model's tokenizer (pad / mask / special ids).
        row_length: Tokens per packed row (the loop's ``max_length``).
    """
    objective = objective_named(objective)
    model = job.model
    changes: dict[str, Any] = {"count_tokens": count_real_tokens}
    # stays memory-mapped (rows built on access); a segmented one is still being tokenised
    on_disk = isinstance(job.train_features, (TokenCacheFeatures, SegmentedFeatures))
    if (options.packing or options.vocab_trim) and not on_disk:
        job = dataclasses.replace(job, train_features=list(job.train_features))  # tokenise a lazy sequence once
    if options.packing:
        changes["train_features"] = (job.train_features.packed(row_length) if on_disk
                                     else pack_features(job.train_features, row_length))
        changes["collate"] = PackedCollator.for_model(objective, _transformers_model(model), tokenizer, row_length)
    trim = None
    if options.vocab_trim:
        vocab_size = _transformers_model(model).get_output_embeddings().out_features
        trim = _training_trim(job.train_features, vocab_size, tokenizer.all_special_ids, on_disk)
        if job.eval_features:  # validation may use ids the training text never does
            extra = vocabulary_trim_for(job.eval_features, vocab_size).kept_ids.tolist()
            trim = dataclasses.replace(VocabularyTrim.from_token_ids([trim.kept_ids.tolist(), extra], vocab_size),
                                       widen_to_targets=trim.widen_to_targets)
        trim = trim.with_negatives(options.trim_negatives)
    loss_fn = objective.fast_loss(masked_only_logits=options.masked_only_logits, trim=trim,
                                  chunk_size=options.chunk_size)
    if options.masked_only_logits:
        split_lm_model(model)  # fail now, with a clear message, if the head cannot be separated
    if options.bf16:
        loss_fn = _under_autocast(loss_fn)
        loss_fn.trim = trim  # type: ignore[attr-defined]
    if options.gradient_checkpointing:
        _transformers_model(model).gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    if options.compile:
        split_lm_model(model).body.compile(dynamic=True)
    changes["loss_fn"] = loss_fn
    return dataclasses.replace(job, **changes)


def tokenize_texts(objective: str | LMObjective, tokenizer: Any, texts: Sequence[str], max_length: int,
                   options: SpeedOptions) -> list[Feature]:
    """Tokenise free text as ``objective.tokenize`` does, through the token cache if on."""
    if not options.token_cache:
        return objective_named(objective).tokenize(tokenizer, texts, max_length)
    return cached_text_features(objective, tokenizer, texts, max_length)


def cached_text_features(objective: str | LMObjective, tokenizer: Any, texts: Sequence[str],
                         max_length: int) -> list[Feature]:
    """Return ``objective.tokenize(tokenizer, texts, max_length)`` through the token cache."""
    # The tokeniser function (not the bound method) names the cache entry: one per objective.
    return cached_features(list(texts), tokenizer, type(objective_named(objective)).tokenize_function, max_length)


def _transformers_model(model: Any) -> Any:
    if callable(getattr(model, "get_base_model", None)):
        return model.get_base_model()
    return model


def _under_autocast(loss_fn: Callable[..., tuple[torch.Tensor, int]]) -> Callable[..., tuple[torch.Tensor, int]]:
    def loss_in_bf16(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, count = loss_fn(model, batch)
        return loss.float(), count

    return loss_in_bf16
