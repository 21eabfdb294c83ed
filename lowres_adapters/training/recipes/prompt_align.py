"""The ``prompt_align`` recipe: soft prompt on a frozen backbone, task loss + lambda x alignment loss.

Inspired by arXiv 2507.00601 (prompt- and alignment-based transfer under minimal labels), whose
formulas and settings are not public; the exact choices made here are in docs/transfer.md:

- student = the adapted model (default adapter ``prompt_tuning``, any type that adds parameters
  works) on the target-language side of each parallel pair;
- teacher = the same base weights with adapters switched off, on the high-resource side;
- ``loss = task_loss + align_weight * align_loss``; the task loss is the model's own objective on
  the target text (``lm``), the answer of an instruction prompt (``sft``) or nothing (``none``);
  the alignment loss is any registered plugin (``cosine`` by default) on pooled hidden states;
- few labels: ``--max-examples N`` draws N training pairs with a fixed selection seed; synthetic
  pseudo-pairs come from the ``synthetic`` data source (provenance ``synthetic=True``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.examples import PairExample
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.training.alignment import (
    AlignmentObjective,
    build_alignment_loss,
    check_frozen_backbone,
    require_disabling,
    retrieval_accuracy,
)
from lowres_adapters.training.batching import pad_features, tokenize_prompt_answer
from lowres_adapters.training.heads import POOLINGS
from lowres_adapters.training.lm_objectives import CAUSAL_LM, LMObjective, objective_named
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.objectives import MASK_PROBABILITY, token_cross_entropy
from lowres_adapters.training.recipes.base import Recipe, RecipeContext, attach_adapter, score_held_out

TASK_LOSSES = ("lm", "sft", "none")
DECODER_DEFAULTS = {"lr": 5e-3, "batch_size": 8, "max_length": 128, "max_steps": 40, "schedule": "cosine",
                    "warmup_ratio": 0.05, "min_lr_ratio": 0.1}
ENCODER_DEFAULTS = {"lr": 5e-3, "batch_size": 16, "max_length": 128, "max_steps": 1000, "schedule": "linear",
                    "warmup_ratio": 0.05}


@dataclass(frozen=True)
class PromptAlignOptions:
    """Options of the ``prompt_align`` recipe (``[recipe_options]``).

    Attributes:
        align_loss: Registered alignment loss (``lowres list losses``): mse, cosine, kl, infonce, ...
        align_config: Settings of that loss's config class, e.g. ``{temperature = 0.05}``.
        align_weight: lambda in ``task + lambda * align``.
        pooling: How hidden states become one vector per text: mean, first or last token.
        align_layer: Which hidden state is aligned: index into ``hidden_states`` (-1 = last layer).
        skip_first: Real tokens left out of the pooling at the start of each text; None = 1 on
            decoders (the BOS / attention-sink position, the same for every text and thousands of
            times larger than the others: a mean over it makes every text look alike), 0 on encoders.
        task_loss: ``lm`` (the model's objective on the target text), ``sft`` (answer-only loss of
            ``sft_template`` with the target text as answer) or ``none`` (alignment only).
        sft_template: Instruction prompt for ``sft``; ``{source}`` is the high-resource text.
        selection_seed: Seed of the draw of ``--max-examples`` training pairs (fixed across run
            seeds, so a stability analysis varies the training, not the examples).
        synthetic_text: High-resource sentences for synthetic pseudo-pairs (with ``synthetic_lexicon``).
        synthetic_lexicon: Bilingual lexicon TSV for the ``synthetic`` data source.
        synthetic_only: Train on the synthetic pairs alone (else they are added to the real ones).
        eval_pairs: Held-out pairs scored for alignment (cosine, top-1 retrieval), drawn from the
            test split with ``selection_seed``.
        mask_probability: Masked-LM share for encoders' ``lm`` task loss.
    """

    align_loss: str = "cosine"
    align_config: Mapping[str, Any] = field(default_factory=dict)
    align_weight: float = 1.0
    pooling: str = "mean"
    align_layer: int = -1
    skip_first: int | None = None
    task_loss: str = "lm"
    sft_template: str = "Translate into the target language:\n{source}\n"
    selection_seed: int = 0
    synthetic_text: str = ""
    synthetic_lexicon: str = ""
    synthetic_only: bool = False
    eval_pairs: int = 200
    mask_probability: float = MASK_PROBABILITY

    def __post_init__(self) -> None:
        if self.align_weight < 0:
            raise ValueError("align_weight must be >= 0")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
        if self.task_loss not in TASK_LOSSES:
            raise ValueError(f"task_loss must be one of {', '.join(TASK_LOSSES)}")
        if self.task_loss == "none" and self.align_weight == 0:
            raise ValueError("with task_loss = none, align_weight must be > 0 (nothing would train)")
        if "{source}" not in self.sft_template:
            raise ValueError("sft_template must contain {source}")
        if bool(self.synthetic_text) != bool(self.synthetic_lexicon):
            raise ValueError("synthetic_text and synthetic_lexicon go together")
        if self.synthetic_only and not self.synthetic_text:
            raise ValueError("synthetic_only needs synthetic_text and synthetic_lexicon")
        if self.skip_first is not None and self.skip_first < 0:
            raise ValueError("skip_first must be >= 0 (or unset for the model's default)")
        if self.eval_pairs < 2:
            raise ValueError("eval_pairs must be >= 2")
        if not 0 < self.mask_probability < 1:
            raise ValueError("mask_probability must be in (0, 1)")


def split_pair(pair: PairExample, language: str) -> tuple[str, str]:
    """Return ``(target-language text, high-resource text)`` of a pair."""
    if pair.target_lang == language:
        return pair.target, pair.source
    if pair.source_lang == language:
        return pair.source, pair.target
    raise LowresError(f"pair {pair.id!r} is {pair.source_lang}-{pair.target_lang}; neither side is {language}")


def build_features(pairs: Sequence[PairExample], context: RecipeContext, with_ids: bool) -> list[dict[str, Any]]:
    """Tokenise pairs: student ids (target text), teacher ids (high-resource text), SFT ids if needed."""
    options, tokenizer, max_length = context.options, context.tokenizer, context.loop.max_length
    features = []
    for index, pair in enumerate(pairs):
        student, teacher = split_pair(pair, context.language)
        if not student.strip() or not teacher.strip():
            continue
        feature: dict[str, Any] = {"input_ids": context.objective.encode(tokenizer, student, max_length),
                                   "teacher_input_ids": context.objective.encode(tokenizer, teacher, max_length)}
        if options.task_loss == "sft":
            sft = tokenize_prompt_answer(tokenizer, options.sft_template.format(source=teacher), student, max_length)
            feature.update({"task_input_ids": sft["input_ids"], "task_labels": sft["labels"]})
        if with_ids:
            feature["example_id"] = index
        features.append(feature)
    return features


def skipped_tokens(options: PromptAlignOptions, objective: str | LMObjective) -> int:
    """Return how many leading real tokens the pooling leaves out (``skip_first``, or 1 on decoders)."""
    if options.skip_first is not None:
        return options.skip_first
    return 0 if objective_named(objective).predicts_first_token else 1


def held_out_pairs(pairs: Sequence[PairExample], options: PromptAlignOptions) -> list[PairExample]:
    """Return the held-out pairs scored for alignment: all of them, or ``eval_pairs`` drawn with
    ``selection_seed`` (a test split in corpus order starts with similar texts, e.g. a genealogy)."""
    pairs = list(pairs)
    if len(pairs) <= options.eval_pairs:
        return pairs
    return random.Random(options.selection_seed).sample(pairs, options.eval_pairs)


class AlignmentCollator:
    """Pad the student and teacher sides (and the SFT side); mask the student for encoders.

    Args:
        tokenizer: Supplies pad (and mask) ids.
        objective: The model's objective (or its name): the student side is collated by it.
        mask_probability: Masked-LM share for encoders.
    """

    def __init__(self, tokenizer: Any, objective: str | LMObjective,
                 mask_probability: float = MASK_PROBABILITY) -> None:
        objective = objective_named(objective)
        self.pad_token_id = tokenizer.pad_token_id
        self.student = objective.collator(tokenizer, mask_probability)
        self.masked = objective.masked

    def __call__(self, features: Sequence[Mapping[str, Any]], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Return the batch: student ``input_ids/attention_mask/labels``, ``teacher_*``, ``task_*``."""
        batch = self.student([{"input_ids": f["input_ids"]} for f in features], generator)
        if self.masked:  # the alignment reads the unmasked text
            batch["plain_input_ids"] = pad_features([{"input_ids": f["input_ids"]} for f in features],
                                                    self.pad_token_id)["input_ids"]
        teacher = pad_features([{"input_ids": f["teacher_input_ids"]} for f in features], self.pad_token_id)
        batch["teacher_input_ids"], batch["teacher_attention_mask"] = teacher["input_ids"], teacher["attention_mask"]
        if "task_input_ids" in features[0]:
            task = pad_features([{"input_ids": f["task_input_ids"], "labels": f["task_labels"]} for f in features],
                                self.pad_token_id)
            batch.update({f"task_{key}": value for key, value in task.items()})
        if "example_id" in features[0]:
            batch["example_id"] = torch.tensor([f["example_id"] for f in features], dtype=torch.long)
        return batch


def make_loss_fn(objective: str | LMObjective, task_loss: str, align_weight: float, alignment: AlignmentObjective):
    """Return ``loss_fn(model, batch) -> (task + weight * align, n)`` for the loop."""
    objective = objective_named(objective)

    def loss_fn(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        mask = batch["attention_mask"]
        plain = batch.get("plain_input_ids", batch["input_ids"])
        student, outputs = alignment.student_side(model, plain, mask)
        count = int(mask.shape[0])
        task = student.pooled.sum() * 0.0
        if task_loss == "lm" and not objective.masked:
            task, count = token_cross_entropy(outputs.logits[:, :-1], batch["labels"][:, 1:])
        elif task_loss == "lm":
            logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits  # (batch, seq, vocab)
            task, count = token_cross_entropy(logits, batch["labels"])
        elif task_loss == "sft":
            logits = model(input_ids=batch["task_input_ids"], attention_mask=batch["task_attention_mask"]).logits
            task, count = token_cross_entropy(logits[:, :-1], batch["task_labels"][:, 1:])
        if align_weight == 0:
            return task, max(count, 1)
        teacher = alignment.teacher_side(batch["teacher_input_ids"], batch["teacher_attention_mask"],
                                         batch.get("example_id"))
        return task + align_weight * alignment.loss(student, teacher), max(count, 1)

    return loss_fn


class PromptAlignRecipe(Recipe):
    """Soft prompt (+ any light adapter) on a frozen backbone, aligned to the frozen model on parallel text."""

    name = "prompt_align"
    description = "soft prompt on a frozen backbone: task loss + lambda x alignment to the frozen model"
    options_class = PromptAlignOptions
    needs = ("pairs",)
    default_adapter = "prompt_tuning"

    def loop_defaults(self, objective: LMObjective) -> dict[str, Any]:
        """Return soft-prompt defaults: lr 5e-3 (cross-lingual soft prompts), batch 8, 40 steps on decoders."""
        return dict(ENCODER_DEFAULTS if objective.masked else DECODER_DEFAULTS)

    def check_data(self, context: RecipeContext) -> None:
        """Check pairs (or synthetic settings), held-out text and the alignment loss name."""
        options = context.options
        if not options.synthetic_only:
            super().check_data(context)
        elif not context.data.text.get("test"):
            raise LowresError(f"no held-out text for {context.language}: pass --eval-text FILE")
        build_alignment_loss(options.align_loss, options.align_config)
        if options.task_loss == "lm" and context.objective.masked and context.tokenizer.mask_token_id is None:
            raise LowresError("task_loss = lm on an encoder needs a tokenizer with a mask token")

    def attach(self, context: RecipeContext) -> Any:
        """Attach the adapter, then refuse adapter types that would train the teacher's weights."""
        drop_stale_forwards(context.model)  # the base scoring asked for hidden states
        base_ids = {id(parameter) for parameter in context.model.parameters()}
        handle = attach_adapter(context)
        context.handle = handle
        check_frozen_backbone(base_ids, context.trained_parameters())
        require_disabling(handle, "prompt-align's frozen teacher")
        return handle

    def training_pairs(self, context: RecipeContext) -> list[PairExample]:
        """Return the real training pairs (``--max-examples`` of them, drawn with ``selection_seed``)
        plus or instead of the synthetic ones."""
        options = context.options
        real = [] if options.synthetic_only else list(context.data.pairs.get("train", []))
        limit = context.settings.data.max_train_examples
        if limit is not None and limit < len(real):
            real = random.Random(options.selection_seed).sample(real, limit)
        return real + (self.synthetic_pairs(context) if options.synthetic_text else [])

    def synthetic_pairs(self, context: RecipeContext) -> list[PairExample]:
        """Return pseudo-pairs from the registered ``synthetic`` data source (provenance synthetic)."""
        source = get_registry().data_source("synthetic")
        config = config_from_dict(source.config_class, {
            "text_path": context.options.synthetic_text, "lexicon_path": context.options.synthetic_lexicon,
            "source_lang": context.settings.data.source_lang, "target_lang": context.language,
        }, where="synthetic data")
        pairs = list(source.open(config))
        if not pairs:
            raise LowresError("the synthetic source produced no pairs: does the lexicon cover the sentences?")
        return pairs

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the task + alignment job over the training pairs."""
        options = context.options
        pairs = self.training_pairs(context)
        features = build_features(pairs, context, with_ids=True)
        if not features:
            raise LowresError("prompt_align found no training pairs with text on both sides")
        loss_fn, needs_log_probs = build_alignment_loss(options.align_loss, options.align_config)
        alignment = AlignmentObjective(loss_fn, needs_log_probs, context.handle, options.pooling, options.align_layer,
                                       skip_first=skipped_tokens(options, context.objective),
                                       cache_limit=0 if needs_log_probs and len(features) > 256 else 4096)
        validation = list(context.data.pairs.get("validation", []))[: context.loop.eval_examples]
        eval_features = build_features(validation, context, with_ids=False) if context.loop.eval_every else None
        context.state["prompt_align_datasets"] = sorted({pair.provenance.source for pair in pairs})
        return TrainingJob(model=context.handle.model, parameters=context.trained_parameters(),
                           train_features=features,
                           collate=AlignmentCollator(context.tokenizer, context.objective, options.mask_probability),
                           loss_fn=make_loss_fn(context.objective, options.task_loss, options.align_weight, alignment),
                           eval_features=eval_features or None, name=self.name,
                           freezing=context.freezing() + "; teacher = the same weights with adapters off")

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Return bits/char on held-out text plus held-out alignment: mean cosine and top-1 retrieval."""
        figures = score_held_out(context, model)
        pairs = held_out_pairs(context.data.pairs.get("test", []), context.options)
        if len(pairs) >= 2:
            figures.update(alignment_figures(context, model, pairs))
        return figures

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the corpora of the training pairs (synthetic ones included by name)."""
        names = context.state.get("prompt_align_datasets") or [
            pair.provenance.source for pair in context.data.pairs.get("train", [])]
        return sorted({name for name in names if name and name != "unknown"})


def drop_stale_forwards(model: torch.nn.Module) -> int:
    """Remove per-instance ``forward`` attributes that only repeat the module's own class method.

    transformers' ``check_model_inputs`` (4.5x) records hidden states by wrapping each decoder
    layer's ``forward`` and afterwards assigns the original bound method back to the instance. An
    ``adapters`` adapter attached later swaps the layer's class for one whose ``forward`` calls the
    adapter, but the stale instance attribute still wins: the adapter is never called and nothing
    gets a gradient. Call before attaching; returns how many attributes were removed.
    """
    removed = 0
    for module in model.modules():
        forward = module.__dict__.get("forward")
        if getattr(forward, "__self__", None) is module and \
                getattr(forward, "__func__", None) is getattr(type(module), "forward", None):
            del module.forward
            removed += 1
    return removed


@torch.no_grad()
def alignment_figures(context: RecipeContext, model: Any, pairs: Sequence[PairExample],
                      batch_size: int = 16) -> dict[str, float]:
    """Return held-out ``align_cosine`` (mean cosine of pooled student vs teacher), ``align_retrieval_top1``
    (share of target texts whose nearest high-resource text is their own pair),
    ``align_retrieval_top1_to_target`` (share of high-resource texts whose nearest target text is
    their own pair, e.g. English -> Chichewa) and ``align_loss``."""
    options = context.options
    loss_fn, needs_log_probs = build_alignment_loss(options.align_loss, options.align_config)
    alignment = AlignmentObjective(loss_fn, needs_log_probs, context.handle, options.pooling, options.align_layer,
                                   skip_first=skipped_tokens(options, context.objective),
                                   base_model=model, cache_limit=0)
    features = build_features(pairs, context, with_ids=False)
    collate = AlignmentCollator(context.tokenizer, CAUSAL_LM)  # no masking at evaluation
    was_training = model.training
    model.eval()
    students, teachers, losses = [], [], []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start: start + batch_size], torch.Generator())
        student, _ = alignment.student_side(model, batch["input_ids"], batch["attention_mask"])
        teacher = alignment.teacher_side(batch["teacher_input_ids"], batch["teacher_attention_mask"])
        students.append(student.pooled.float())
        teachers.append(teacher.pooled.float())
        losses.append(float(alignment.loss(student, teacher)) * len(batch["input_ids"]))
    model.train(was_training)
    student_all, teacher_all = torch.cat(students), torch.cat(teachers)  # (pairs, hidden) each
    cosine = torch.nn.functional.cosine_similarity(student_all, teacher_all, dim=-1).mean()
    return {"align_cosine": float(cosine), "align_retrieval_top1": retrieval_accuracy(student_all, teacher_all),
            "align_retrieval_top1_to_target": retrieval_accuracy(teacher_all, student_all),
            f"align_loss_{options.align_loss}": sum(losses) / len(student_all), "align_eval_pairs": len(student_all)}
