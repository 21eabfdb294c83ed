"""Continual pre-training then supervised fine-tuning (arXiv 2512.03976), with adapters.

- ``cpt``: causal LM on the language's raw text (the ``language`` recipe with CPT defaults), with
  ``replay_share`` of the training text (in characters) replayed from a general-text source in the
  model's original language against forgetting (:mod:`lowres_adapters.training.replay`).
- ``sft``: the pack's parallel pairs rendered as translation instructions into the target language
  (``directions``: or out of it, or both; from every source language present), in the tokenizer's
  chat template when it has one, loss on the answer only; a share of plain original-language text
  (the non-target side of the pairs, e.g. English or Chinese) is mixed in against forgetting.
- ``cpt_sft``: both, one after the other on the same adapter; ``stages/cpt`` and ``stages/sft``
  are run folders of their own and the run folder holds the final adapter.

Defaults. The paper trains all 3B weights with lr 5e-5 (CPT, cosine, 3% warm-up) and 1e-5 (SFT,
2 epochs, 10% warm-up). An adapter on a 135M model has ~1-5M freshly initialised weights and a CPU
budget of minutes, so those rates barely move it. CPT is the ``language`` recipe's measured line
(LoRA r=16 on every linear layer of the top half, 250 steps of 2 rows at lr 5e-3); SFT continues
the same adapter for 200 steps of 2 rows of 192 tokens at lr 3e-3; the warm-up shares (3%, 10%)
and cosine decay are the paper's. ``--max-steps 0 --epochs 2`` gives the paper's 2 SFT epochs.
What these defaults reach, stage by stage, is in docs/training.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.examples import PairExample, TextExample
from lowres_adapters.data.languages import language_name
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.generation import GenerationSettings
from lowres_adapters.evaluation.language_modeling import score_token_rows
from lowres_adapters.evaluation.translation import (
    AUTO_FORMAT,
    CHAT_INSTRUCTION,
    DEFAULT_PROMPT,
    PROMPT_FORMATS,
    resolve_prompt_format,
)
from lowres_adapters.training.batching import (
    IGNORE_INDEX,
    CausalCollator,
    Feature,
    tokenize_for_clm,
    tokenize_prompt_answer,
)
from lowres_adapters.training.lm_objectives import CAUSAL_LM, LMObjective
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.objectives import causal_lm_loss
from lowres_adapters.training.recipes.base import Recipe, RecipeContext
from lowres_adapters.training.recipes.language import LanguageOptions, LanguageRecipe
from lowres_adapters.training.replay import PAIRS, interleave, replay_chars_wanted, replay_texts
from lowres_adapters.training.speed import fast_text_defaults, speed_up_for_loop

CPT_DEFAULTS = {"lr": 5e-3, "batch_size": 2, "max_length": 128, "max_steps": 250, "schedule": "cosine",
                "warmup_ratio": 0.03, "min_lr_ratio": 0.1}
"""The ``language`` recipe's measured decoder line (250 steps of 2 rows at lr 5e-3) with the paper's 3% warm-up."""
SFT_DEFAULTS = {"lr": 3e-3, "batch_size": 2, "max_length": 192, "max_steps": 200, "schedule": "cosine",
                "warmup_ratio": 0.10, "min_lr_ratio": 0.1}
"""200 steps of 2 packed rows of 192 tokens (about 500 instructions), lr 3e-3 (docs/training.md)."""
SFT_SPEED_CHANGES = {"vocab_trim": False, "token_cache": False}
"""SFT runs the free-text fast path (packed rows, only answer positions scored, bf16 where native)
but keeps the full vocabulary, since generation must learn to push every other token down; it
tokenises its own instruction examples, so the text token cache has nothing to do."""
PROMPT = DEFAULT_PROMPT
"""The plain instruction: the translation evaluation's own prompt, so ``lowres evaluate`` asks as SFT taught."""
DIRECTIONS = ("both", "into", "from")
REPLAY_SHARE = 0.2
"""Default share of CPT training characters replayed (docs/training.md, "Forgetting and replay")."""

logger = logging.getLogger("lowres_adapters.training")


@dataclass(frozen=True)
class CptOptions(LanguageOptions):
    """Options of the ``cpt`` recipe.

    Attributes:
        replay_share: Share of the training text, in characters, that is replayed general text in
            the model's original language (against forgetting); 0 trains on the target language only.
        replay_source: Where replayed text comes from: ``"pairs"`` (the non-target side of the
            training pairs), ``"pairs:LANG"``, a registered data source yielding text, or a text
            file or folder (:mod:`lowres_adapters.training.replay`).
        replay_config: Settings of that data source (for a file: of the ``text`` source).
    """

    replay_share: float = REPLAY_SHARE
    replay_source: str = PAIRS
    replay_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.replay_share < 1:
            raise ValueError("replay_share must be in [0, 1)")
        if not self.replay_source.strip():
            raise ValueError("replay_source must name 'pairs', a data source or a file")


CPT_OPTION_NAMES = ("replay_share", "replay_source", "replay_config")


class CptRecipe(LanguageRecipe):
    """Continual pre-training: causal LM on the language's raw text, with replayed general text."""

    name = "cpt"
    description = "continual pre-training: causal LM on raw text with a replay mix (stage 1 of arXiv 2512.03976)"
    options_class = CptOptions

    def loop_defaults(self, objective: LMObjective) -> dict[str, Any]:
        """Return the CPT defaults (see the module docstring)."""
        if objective.masked:
            return super().loop_defaults(objective)
        return {**fast_text_defaults(), **CPT_DEFAULTS}

    def check_data(self, context: RecipeContext) -> None:
        """Check the text, then read the replayed texts (so a bad ``replay_source`` fails before scoring)."""
        super().check_data(context)
        context.state["replay"] = self.replayed(context)

    def replayed(self, context: RecipeContext) -> list[TextExample]:
        """Return the replayed texts of this run (empty when ``replay_share`` is 0)."""
        options = context.options
        if options.replay_share > 0 and options.replay_source == PAIRS and not context.data.pairs.get("train"):
            logger.warning("cpt: no training pairs to replay the original language from; replay is off "
                           "(set recipe_options.replay_source to a file or a data source)")
            return []
        target_chars = sum(len(example.text) for example in super().training_texts(context)[0])
        wanted = replay_chars_wanted(target_chars, options.replay_share)
        replayed = replay_texts(options.replay_source, options.replay_config, context.data, context.language, wanted)
        if replayed:
            got = sum(len(example.text) for example in replayed)
            logger.info("cpt: replaying %d texts from %s: %.1f%% of the training characters",
                        len(replayed), options.replay_source, 100 * got / (got + target_chars))
        return replayed

    def training_texts(self, context: RecipeContext) -> tuple[list[TextExample], list[TextExample]]:
        """Return the target-language training texts with the replayed ones spread among them;
        validation stays target-language only."""
        train, validation = super().training_texts(context)
        if "replay" not in context.state:  # a stage of cpt_sft: its check_data did not run
            context.state["replay"] = self.replayed(context)
        return interleave(train, context.state["replay"]), validation

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the text corpora plus the replayed ones."""
        names = set(super().datasets(context))
        names |= {example.provenance.source for example in context.state.get("replay", [])}
        return sorted(name for name in names if name and name != "unknown")


@dataclass(frozen=True)
class SftOptions:
    """Options of the ``sft`` recipe.

    Attributes:
        directions: ``"into"`` (default: other language -> target, what the translation goal asks),
            ``"from"`` (target -> other) or ``"both"``.
        mix_share: Share of the training examples that are plain original-language text (causal
            LM on the pairs' non-target side), against forgetting; 0 disables.
        prompt: Instruction template with ``{source}``, ``{source_name}``, ``{target_name}``; None
            takes the format's own (``DEFAULT_PROMPT`` plain, ``CHAT_INSTRUCTION`` chat).
        prompt_format: ``"plain"``: the filled template, the answer after a space, then EOS;
            ``"chat"``: the template as the user turn of the tokenizer's chat template, the answer
            as the assistant turn ending with its end-of-turn token; ``"auto"`` (default): chat
            when the tokenizer has a chat template, else plain. ``lowres evaluate`` asks the
            adapted model in the same format.
        num_beams: Decoding the run is evaluated with (default 1, greedy: after SFT within about
            1 chrF++ of beam 4 at a quarter of the cost; None: ``lowres evaluate``'s default, 4);
            so are ``no_repeat_ngram_size`` (default 3: measured to stop the loops of CPT and SFT
            outputs and to raise chrF++, docs/training.md), ``repetition_penalty`` and
            ``max_new_tokens``.
        max_pairs: Use at most this many training pairs (the first N); None for all.
        eval_pairs: Held-out pairs (the first N of ``pairs["test"]``) whose answers are scored
            (``answer_bits_per_char``), in the into-target direction.
    """

    directions: str = "into"
    mix_share: float = 0.2
    prompt: str | None = None
    prompt_format: str = AUTO_FORMAT
    num_beams: int | None = 1
    no_repeat_ngram_size: int | None = 3
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None
    max_pairs: int | None = None
    eval_pairs: int = 100

    def __post_init__(self) -> None:
        if self.directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {', '.join(DIRECTIONS)}, got {self.directions!r}")
        if not 0 <= self.mix_share < 1:
            raise ValueError("mix_share must be in [0, 1)")
        if self.prompt is not None and "{source}" not in self.prompt:
            raise ValueError("prompt must contain {source}")
        if self.prompt_format not in (*PROMPT_FORMATS, AUTO_FORMAT):
            raise ValueError(f"prompt_format must be one of {', '.join((*PROMPT_FORMATS, AUTO_FORMAT))}, "
                             f"got {self.prompt_format!r}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError("max_pairs must be >= 1")
        if self.eval_pairs < 0:
            raise ValueError("eval_pairs must be >= 0")

        GenerationSettings(**{key: value for key, value in (
            ("num_beams", self.num_beams), ("no_repeat_ngram_size", self.no_repeat_ngram_size),
            ("repetition_penalty", self.repetition_penalty), ("max_new_tokens", self.max_new_tokens))
            if value is not None})

    def in_format(self, tokenizer: Any) -> tuple[str, str]:
        """Return ``(prompt format, instruction template)`` in use with ``tokenizer``: ``"auto"``
        resolved, and the given template, else the format's own."""
        prompt_format = resolve_prompt_format(self.prompt_format, tokenizer)
        return prompt_format, self.prompt or (CHAT_INSTRUCTION if prompt_format == "chat" else PROMPT)


def _names(code: str) -> str:
    return language_name(code)


def oriented(pair: PairExample, language: str) -> tuple[str, str, str]:
    """Return ``(other language, other text, target text)`` of a pair, whichever side is ``language``."""
    if pair.target_lang == language:
        return pair.source_lang, pair.source, pair.target
    if pair.source_lang == language:
        return pair.target_lang, pair.target, pair.source
    raise LowresError(f"pair {pair.id} is {pair.source_lang}-{pair.target_lang}, neither side is {language}")


def instruction_examples(pairs: Sequence[PairExample], language: str, directions: str,
                         prompt: str) -> list[tuple[str, str]]:
    """Return ``(prompt, answer)`` translation examples in the requested directions."""
    examples = []
    for pair in pairs:
        other_lang, other_text, target_text = oriented(pair, language)
        if directions in ("both", "into"):
            examples.append((prompt.format(source=other_text, source_name=_names(other_lang),
                                           target_name=_names(language)), " " + target_text))
        if directions in ("both", "from"):
            examples.append((prompt.format(source=target_text, source_name=_names(language),
                                           target_name=_names(other_lang)), " " + other_text))
    return examples


def mixed_in_texts(pairs: Sequence[PairExample], language: str, share: float, sft_examples: int) -> list[str]:
    """Return original-language texts so that they make ``share`` of all training examples.

    The texts are the non-target sides of the pairs, taken evenly spaced (deterministic).
    """
    if share <= 0 or not pairs:
        return []
    wanted = min(len(pairs), math.ceil(share / (1 - share) * sft_examples))
    stride = len(pairs) / wanted
    return [oriented(pairs[int(i * stride)], language)[1] for i in range(wanted)]


def sft_feature(tokenizer: Any, instruction: str, answer: str, max_length: int, prompt_format: str) -> Feature:
    """Tokenise one SFT example in ``prompt_format``; labels cover the answer and its end token only.

    ``chat`` wraps ``instruction`` as the user turn of the tokenizer's chat template (with the
    generation prompt) and ends the answer with the end-of-turn token (``<|im_end|>`` when the
    vocabulary has it, else EOS); ``plain`` is :func:`tokenize_prompt_answer`.
    """
    if prompt_format != "chat":
        return tokenize_prompt_answer(tokenizer, instruction, answer, max_length)
    if not getattr(tokenizer, "chat_template", None):
        raise LowresError("prompt_format 'chat' needs a tokenizer with a chat template; use 'plain'")
    chat = tokenizer.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                         add_generation_prompt=True)
    prompt_ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if not isinstance(end_id, int) or end_id == tokenizer.unk_token_id:
        end_id = tokenizer.eos_token_id
    answer_ids = (tokenizer(answer.strip(), add_special_tokens=False)["input_ids"] + [end_id])[: max_length - 1]
    prompt_ids = prompt_ids[-(max_length - len(answer_ids)):]
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids}


class SftRecipe(Recipe):
    """Supervised fine-tuning on translation instructions built from parallel pairs."""

    name = "sft"
    description = "SFT on parallel pairs as translation instructions, loss on the answer (stage 2 of arXiv 2512.03976)"
    options_class = SftOptions
    cache_base_scores = True
    needs = ("pairs",)

    def loop_defaults(self, objective: LMObjective) -> dict[str, Any]:
        """Return the SFT defaults (see the module docstring) on the fast path (``SFT_SPEED_CHANGES``)."""
        return {**fast_text_defaults(), **SFT_SPEED_CHANGES, **SFT_DEFAULTS}

    adapter_defaults = LanguageRecipe.adapter_defaults  # the decoder text recipes' LoRA defaults

    def base_score_options(self, context: RecipeContext) -> dict[str, Any]:
        """Return what the base model's figures depend on: the answer prompts and how many are scored
        (not the training options: a sweep over steps or rates scores the base once)."""
        return answer_score_options(context)

    def check_data(self, context: RecipeContext) -> None:
        """Require a causal LM besides the pairs and the held-out text."""
        super().check_data(context)
        if context.objective.masked:
            raise LowresError("the sft recipe needs a causal (decoder) model; encoders use the language recipe")

    def features(self, context: RecipeContext, pairs: Sequence[PairExample]) -> list[Feature]:
        """Return answer-only instruction features plus the mixed-in plain-text features."""
        options, max_length = context.options, context.loop.max_length
        prompt_format, template = options.in_format(context.tokenizer)
        examples = instruction_examples(pairs, context.language, options.directions, template)
        features = [sft_feature(context.tokenizer, prompt, answer, max_length, prompt_format)
                    for prompt, answer in examples]
        mixed = mixed_in_texts(pairs, context.language, options.mix_share, len(features))
        return features + tokenize_for_clm(context.tokenizer, mixed, max_length)

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the answer-only causal LM job on the instruction examples."""
        pairs = list(context.data.pairs["train"])
        if context.options.max_pairs is not None:
            pairs = pairs[: context.options.max_pairs]
        eval_features = None
        if context.loop.eval_every:
            held = context.data.pairs.get("validation") or context.data.pairs.get("test") or []
            eval_features = self.features(context, held[: context.loop.eval_examples]) or None
        job = TrainingJob(model=context.handle.model, parameters=context.trained_parameters(),
                          train_features=self.features(context, pairs),
                          collate=CausalCollator(context.tokenizer.pad_token_id), loss_fn=causal_lm_loss,
                          eval_features=eval_features, name=self.name, freezing=context.freezing())
        return speed_up_for_loop(job, context.loop, objective=CAUSAL_LM, tokenizer=context.tokenizer)

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Return held-out bits/char and the bits per character of held-out translation answers."""
        figures = super().evaluate(context, model)
        held = list(context.data.pairs.get("test", []))[: context.options.eval_pairs]
        if held:
            figures.update(answer_scores(context, model, held))
        return figures

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the pairs' corpora."""
        names = {pair.provenance.source for pair in context.data.pairs.get("train", [])}
        return sorted(name for name in names if name and name != "unknown")


def answer_score_options(context: RecipeContext) -> dict[str, Any]:
    """Return the options :func:`answer_scores` depends on, ``"auto"`` resolved (a cache key)."""
    prompt_format, template = context.options.in_format(context.tokenizer)
    return {"prompt_format": prompt_format, "template": template, "eval_pairs": context.options.eval_pairs}


def answer_scores(context: RecipeContext, model: Any, pairs: Sequence[PairExample]) -> dict[str, Any]:
    """Return ``answer_bits_per_char``: the answer-only loss of held-out into-target translations,
    in bits per character of the reference answers (tokenizer-independent).

    Scored on the batched, length-sorted path of held-out scoring
    (:func:`~lowres_adapters.evaluation.language_modeling.score_token_rows`).
    """
    prompt_format, template = context.options.in_format(context.tokenizer)
    examples = instruction_examples(pairs, context.language, "into", template)
    rows = []
    for prompt, answer in examples:
        feature = sft_feature(context.tokenizer, prompt, answer, 512, prompt_format)
        first_scored = next(index for index, label in enumerate(feature["labels"]) if label != IGNORE_INDEX)
        rows.append((feature["input_ids"], first_scored))
    pad_id = context.tokenizer.pad_token_id if context.tokenizer.pad_token_id is not None else 0
    total_nats, _ = score_token_rows(model, rows, pad_id=pad_id, batch_size=8,
                                     progress="scoring answers" if context.loop.progress else None)
    characters = sum(len(answer.strip()) for _, answer in examples)
    return {"answer_bits_per_char": total_nats / math.log(2) / max(characters, 1), "answer_examples": len(examples)}


@dataclass(frozen=True)
class CptSftOptions(SftOptions):
    """Options of ``cpt_sft``: the SFT options plus per-stage steps and learning rates.

    Attributes:
        cpt_max_steps: Steps of the CPT stage (None: ``--max-steps`` or the CPT default).
        sft_max_steps: Steps of the SFT stage (None: ``--max-steps`` or the SFT default).
        cpt_lr: Learning rate of the CPT stage (None: ``--lr`` or the CPT default).
        sft_lr: Learning rate of the SFT stage (None: ``--lr`` or the SFT default).
        replay_share, replay_source, replay_config: The CPT stage's replay mix (:class:`CptOptions`).
    """

    cpt_max_steps: int | None = None
    sft_max_steps: int | None = None
    cpt_lr: float | None = None
    sft_lr: float | None = None
    replay_share: float = REPLAY_SHARE
    replay_source: str = PAIRS
    replay_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        CptOptions(replay_share=self.replay_share, replay_source=self.replay_source)


class CptSftRecipe(Recipe):
    """Two stages on one adapter: ``cpt`` then ``sft`` (SFT continues from the CPT adapter)."""

    name = "cpt_sft"
    description = "continual pre-training then SFT on one adapter (arXiv 2512.03976); stages/cpt and stages/sft"
    options_class = CptSftOptions
    cache_base_scores = True
    needs = ("text", "pairs")

    def stages(self, options: CptSftOptions) -> list[tuple[str, Recipe, dict[str, Any], dict[str, Any]]]:
        """Return the CPT and SFT stages with their own step and learning-rate overrides."""
        def loop(max_steps: int | None, lr: float | None) -> dict[str, Any]:
            return {key: value for key, value in (("max_steps", max_steps), ("lr", lr)) if value is not None}

        sft_options = {f.name: getattr(options, f.name) for f in fields(SftOptions)}
        cpt_options = {name: getattr(options, name) for name in CPT_OPTION_NAMES}
        return [("cpt", CptRecipe(), loop(options.cpt_max_steps, options.cpt_lr), cpt_options),
                ("sft", SftRecipe(), loop(options.sft_max_steps, options.sft_lr), sft_options)]

    adapter_defaults = LanguageRecipe.adapter_defaults  # the decoder text recipes' LoRA defaults

    base_score_options = SftRecipe.base_score_options  # the base is scored as the SFT stage scores it

    def check_data(self, context: RecipeContext) -> None:
        """Require text, pairs, held-out text and a causal model."""
        super().check_data(context)
        if context.objective.masked:
            raise LowresError("the cpt_sft recipe needs a causal (decoder) model")

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Score the base model as the SFT stage does (bits/char and answer bits/char)."""
        sft_options = config_from_dict(SftOptions, {f.name: getattr(context.options, f.name)
                                                    for f in fields(SftOptions)})
        stage_context = _with_options(context, sft_options)
        return SftRecipe().evaluate(stage_context, model)

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the text and pair corpora."""
        return sorted(set(CptRecipe().datasets(context)) | set(SftRecipe().datasets(context)))

    def job(self, context: RecipeContext) -> TrainingJob:  # pragma: no cover - stages run instead
        """Not used: ``cpt_sft`` runs its stages."""
        raise LowresError("cpt_sft runs as two stages; call adapt() rather than job()")


def _with_options(context: RecipeContext, options: Any) -> RecipeContext:
    return replace(context, options=options)
