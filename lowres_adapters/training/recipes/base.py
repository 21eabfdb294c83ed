"""The recipe interface: a named, documented configuration of the one training loop.

``lowres adapt`` (:func:`lowres_adapters.training.adapt.adapt`) drives a recipe in this order::

    base = recipe.evaluate(context, context.model)      # the base model, before any adapter
    handle = recipe.attach(context)                      # add + activate the adapter (seeded)
    job = recipe.job(context)                            # features, collator, loss_fn
    result = train(job, context.loop, stage_dir)         # the one loop
    adapted = recipe.evaluate(context, handle.model)     # the same figures after training
    write run folder (artifact, metrics.json, ...)

A recipe overrides :meth:`Recipe.job` (required) and, where it differs, :meth:`loop_defaults`,
:meth:`check_data`, :meth:`attach`, :meth:`evaluate` and :meth:`artifact_extras`. A multi-stage
recipe returns its stages from :meth:`stages`; each stage runs as above into
``RUN_DIR/stages/<name>/`` on the same adapter, so a later stage continues from the earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.data.examples import PackData, TextExample
from lowres_adapters.devices import low_precision_dtype
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.training.base_scores import cached_base_scores, held_out_parts
from lowres_adapters.training.distributed import ProcessInfo
from lowres_adapters.training.lm_objectives import LMObjective
from lowres_adapters.training.loop import TrainingJob, select_parameters
from lowres_adapters.training.settings import LoopSettings, RunSettings


@dataclass(frozen=True)
class NoOptions:
    """A recipe without options of its own."""


@dataclass
class RecipeContext:
    """Everything a recipe may use; built by ``adapt`` and passed to every recipe method.

    Attributes:
        settings: The run's settings as given (file + CLI).
        loop: The resolved loop settings (loop defaults < recipe defaults < user).
        options: The recipe's options (an instance of ``Recipe.options_class``).
        model: The model to adapt (the base model until :meth:`Recipe.attach` ran; then the
            recipe should train ``handle.model``).
        tokenizer: Its tokenizer (pad token set).
        objective: The model's objective (:data:`~lowres_adapters.training.lm_objectives.CAUSAL_LM`
            for decoders, ``MASKED_LM`` for encoders), chosen once from its config.
        data: The language's data: the pack's splits, with the user's files in their place.
        language: ISO 639-3 code of the target language.
        script: ISO 15924 script code ("" when unknown).
        run_dir: The run folder (for a stage: ``RUN_DIR/stages/<name>``).
        process: This process's place in a multi-process run.
        handle: The attached adapter (set by ``adapt`` from :meth:`Recipe.attach`).
        extra_parameters: Base-model parameters trained as well (``train_also``), by name.
        extra_tensors: Tensors to save with the adapter (e.g. new embedding rows), by key.
        vocabulary: The :class:`~lowres_adapters.training.vocabulary.ExtendedVocabulary` when the
            vocabulary was extended (``--extend-vocab``): its new rows train and are saved too.
        state: Free space for recipes to pass objects between their methods or stages.
        base_model_id: The base model's id as ``adapt`` loaded it: with a pinned revision, the base
            model's held-out scores (:func:`score_held_out`) come from and go to the base-score
            cache entry that ``lowres evaluate`` shares ("" leaves the cache out).
    """

    settings: RunSettings
    loop: LoopSettings
    options: Any
    model: Any
    tokenizer: Any
    objective: LMObjective
    data: PackData
    language: str
    script: str
    run_dir: Path
    process: ProcessInfo = field(default_factory=ProcessInfo)
    handle: Any = None
    extra_parameters: dict[str, Any] = field(default_factory=dict)
    extra_tensors: dict[str, Any] = field(default_factory=dict)
    vocabulary: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    base_model_id: str = ""

    def held_out_texts(self) -> list[str]:
        """Return the held-out texts scored for bits per character (the first ``eval_examples``)."""
        examples = self.data.text.get("test", [])
        limit = self.settings.data.eval_examples
        return [example.text for example in (examples if limit is None else examples[:limit])]

    def trained_parameters(self) -> dict[str, Any]:
        """Return the adapter's trainable parameters plus the ``train_also`` ones."""
        parameters = dict(self.handle.trainable_parameters())
        parameters.update(self.extra_parameters)
        if self.vocabulary is not None:
            parameters.update(self.vocabulary.trainable_parameters())
        return parameters

    def freezing(self) -> str:
        """Return one line saying what trains (printed at the start of a run)."""
        extra = f" + base parameters matching {', '.join(self.settings.train_also)}" if self.settings.train_also else ""
        if self.vocabulary is not None:
            extra += f" + {self.vocabulary.added_tokens} new vocabulary rows"
        trained = {id(parameter) for parameter in self.trained_parameters().values()}
        everything = all(id(parameter) in trained for parameter in self.handle.model.parameters())
        rest = "nothing frozen" if everything else "everything else frozen"
        return f"adapter {self.settings.adapter!r} ({self.handle.name}){extra}; {rest}"


class Recipe:
    """Base class of recipes. Subclasses set the class attributes and implement :meth:`job`.

    Attributes:
        name: Registry name (``lowres adapt --recipe NAME``).
        description: One line for ``lowres adapt --help`` and the docs.
        options_class: Frozen dataclass of the recipe's own settings (``[recipe_options]``).
        needs: What data the recipe reads: some of ``"text"``, ``"pairs"``, ``"edges"``, ``"tasks"``.
        cache_base_scores: Whether :meth:`evaluate` of the base model depends only on the model,
            the options and the held-out data, so its figures may be cached between runs.
        default_adapter: Adapter type used when the run names none.
    """

    name: str = ""
    default_adapter: str = "lora"
    cache_base_scores: bool = False
    description: str = ""
    options_class: type = NoOptions
    needs: tuple[str, ...] = ("text",)

    def loop_defaults(self, objective: LMObjective) -> dict[str, Any]:
        """Return this recipe's default loop settings for ``objective`` (user settings win)."""
        return {}

    def stages(self, options: Any) -> Sequence[tuple[str, "Recipe", dict[str, Any], dict[str, Any]]]:
        """Return the stages of a multi-stage recipe; empty for a single-stage one.

        Each stage is ``(name, recipe, loop overrides, recipe options)``: the loop overrides go on
        top of the user's ``[loop]`` settings, the options build the stage recipe's options.
        """
        return ()

    def check_data(self, context: RecipeContext) -> None:
        """Raise :class:`LowresError` (one line) when the data this recipe needs is missing."""
        if "text" in self.needs and not context.data.text.get("train"):
            raise LowresError(f"recipe {self.name!r} needs training text for {context.language}: "
                              f"run `lowres data fetch {context.language}` or pass --text FILE")
        if "pairs" in self.needs and not context.data.pairs.get("train"):
            raise LowresError(f"recipe {self.name!r} needs parallel pairs for {context.language}: "
                              f"run `lowres data fetch {context.language}` or pass --pairs FILE")
        if not context.data.text.get("test"):
            raise LowresError(f"no held-out text for {context.language}: "
                              f"run `lowres data fetch {context.language}` or pass --eval-text FILE")

    def base_score_options(self, context: RecipeContext) -> dict[str, Any]:
        """Return the options :meth:`evaluate` of the base model depends on (the key of its cached
        figures, with the model and the held-out data): all of them unless a recipe knows better."""
        return config_to_dict(context.options)

    def scores_base(self, context: RecipeContext) -> bool:
        """Return whether :meth:`evaluate` has anything to score on the base model (before an adapter)."""
        return True

    def adapter_defaults(self, context: RecipeContext) -> dict[str, Any]:
        """Return this recipe's default ``adapter_config`` for the run's adapter type and model (the
        run's own ``adapter_config`` wins key by key); empty: the adapter type's own defaults."""
        return {}

    def attach(self, context: RecipeContext) -> Any:
        """Attach the run's adapter type to ``context.model``, activate it and return the handle."""
        return attach_adapter(context, self.adapter_defaults(context))

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the :class:`TrainingJob` the loop runs (features, collator, loss)."""
        raise NotImplementedError

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Return held-out figures of ``model`` (called on the base model and on the adapted one).

        The default scores bits per character (and per byte, perplexity) on the held-out text.
        """
        return score_held_out(context, model)

    def artifact_extras(self, context: RecipeContext) -> dict[str, Any]:
        """Return extra tensors to save with the adapter (default: ``context.extra_tensors`` and
        the new vocabulary rows)."""
        extras = dict(context.extra_tensors)
        if context.vocabulary is not None:
            extras.update(context.vocabulary.state_tensors())
        return extras

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the names of the corpora trained on (for the artifact and model card)."""
        names = {example.provenance.source for split in ("train",) for example in context.data.text.get(split, [])}
        return sorted(name for name in names if name and name != "unknown")


def attach_adapter(context: RecipeContext, defaults: Mapping[str, Any] | None = None) -> Any:
    """Attach ``settings.adapter`` with ``settings.adapter_config`` over ``defaults`` and activate it.

    Also selects the ``train_also`` base parameters into ``context.extra_parameters``.
    """
    settings = context.settings
    spec = get_registry().adapter_type(settings.adapter)
    config = config_from_dict(spec.config_class, {**(defaults or {}), **settings.adapter_config},
                              where=f"adapter_config for {settings.adapter}")
    handle = spec.attach(context.model, settings.adapter_name or context.language, config)
    handle.activate()
    if settings.train_also:
        context.extra_parameters = select_parameters(handle.model, settings.train_also)
    return handle


def score_held_out(context: RecipeContext, model: Any) -> dict[str, Any]:
    """Return bits per character etc. of ``model`` on the held-out texts, with split and size.

    The base model's scores (no adapter attached yet) go through the base-score cache entry that
    ``lowres evaluate`` shares (:func:`~lowres_adapters.training.base_scores.held_out_parts`).
    """
    texts = context.held_out_texts()
    show = context.loop.progress and context.process.is_main
    max_length = max(context.loop.max_length, 512)

    def score() -> dict[str, Any]:
        return dict(context.objective.score(model, context.tokenizer, texts, max_length=max_length,
                                            progress="scoring held-out" if show else None).to_dict())

    if context.base_model_id and context.handle is None and model is context.model and context.vocabulary is None:
        weights = low_precision_dtype(model)
        parts = held_out_parts(context.objective.code, max_length, str(weights) if weights is not None else None)
        figures = dict(cached_base_scores(context.base_model_id, parts, texts, score))
    else:
        figures = score()
    figures.update({"eval_split": "test", "eval_examples": len(texts)})
    return figures


def split_validation(examples: Sequence[TextExample], data: PackData, share: float = 0.05,
                     limit: int = 200) -> tuple[list[TextExample], list[TextExample]]:
    """Return ``(train, validation)``: the pack's validation split when it has one, else the last
    ``share`` of the training examples (at most ``limit``), held out of training."""
    if data.text.get("validation"):
        return list(examples), list(data.text["validation"])
    size = min(limit, int(len(examples) * share))
    if size < 1:
        return list(examples), []
    return list(examples[:-size]), list(examples[-size:])


def options_from(recipe: Recipe, values: Mapping[str, Any]) -> Any:
    """Build the recipe's options from ``[recipe_options]`` with one-line errors."""
    return config_from_dict(recipe.options_class, dict(values), where=f"recipe_options for {recipe.name}")
