"""``adapt(language, **settings)``: the orchestration behind ``lowres adapt``.

Resolve settings (file < CLI), load the data (pack splits or the user's files) and the base model,
score the base model on the held-out split, attach the adapter, run the recipe's stage(s) on the
one loop, score the adapted model, and write the run folder.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from lowres_adapters.artifact import METADATA_FILE, read_tensors
from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.devices import base_dtype, cast_floating_, low_precision_dtype, run_placement, weights_autocast
from lowres_adapters.errors import LowresError
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.registry import get_registry
from lowres_adapters.training.base_scores import HELD_OUT_SCORES, cached_base_scores
from lowres_adapters.training.checkpoint import checkpoint_steps
from lowres_adapters.training.distributed import current_process
from lowres_adapters.training.lm_objectives import objective_for_config
from lowres_adapters.training.loop import LoopResult, seed_everything, train
from lowres_adapters.training.packing import examples_in
from lowres_adapters.training.recipes import canonical_recipe_name, get_recipe
from lowres_adapters.training.recipes.base import Recipe, RecipeContext, options_from
from lowres_adapters.training.run_data import load_run_data
from lowres_adapters.training.run_folder import (
    build_metadata,
    check_output_path,
    finish_output,
    merge_logs,
    prepare_output,
    write_json,
    write_run_folder,
)
from lowres_adapters.training.settings import (
    RunSettings,
    SettingsError,
    build_run_settings,
    loop_settings_to_json,
    merge_settings,
    read_config_file,
    resolve_loop_settings,
    typed_values,
)
from lowres_adapters.training.vocabulary import extend_for_run, tokens_per_character
from lowres_adapters.version import __version__

LOOP_SHORTCUTS = ("max_steps", "epochs", "batch_size", "grad_accum_steps", "max_length", "lr", "eval_every",
                  "save_every", "seed", "schedule", "warmup_ratio", "early_stopping_patience", "progress")
DATA_SHORTCUTS = ("text", "eval_text", "pairs", "eval_pairs", "source_lang", "max_train_examples", "eval_examples")


@dataclass
class StageResult:
    """One trained stage: its folder, figures and training summary."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]
    training: LoopResult | None


@dataclass
class RunResult:
    """What :func:`adapt` returns.

    Attributes:
        run_dir: The run folder.
        settings: The settings as given.
        recipe: The recipe that ran.
        metrics: ``metrics.json`` contents (``base``, ``adapted``, ``eval_split``, ...).
        stages: The stage(s) that ran, in order (one for single-stage recipes).
    """

    run_dir: Path
    settings: RunSettings
    recipe: str
    metrics: dict[str, Any]
    stages: list[StageResult] = field(default_factory=list)

    @property
    def base_bits_per_char(self) -> float | None:
        """Return the base model's held-out bits per character."""
        return self.metrics.get("base", {}).get("bits_per_char")

    @property
    def adapted_bits_per_char(self) -> float | None:
        """Return the adapted model's held-out bits per character."""
        return self.metrics.get("adapted", {}).get("bits_per_char")


def settings_from(language: str, config: str | Path | None = None, **overrides: Any) -> RunSettings:
    """Return :class:`RunSettings` from a config file and keyword overrides.

    Keyword overrides are top-level fields (``recipe``, ``adapter``, ``model``, ``output``, ...),
    sections as dicts (``loop={...}``, ``data={...}``), or the shortcuts ``max_steps``, ``lr``,
    ``batch_size``, ``eval_every``, ``save_every``, ``seed``, ... (loop) and ``text``,
    ``eval_text``, ``pairs``, ``eval_pairs``, ``eval_examples``, ... (data). None values are ignored.
    """
    values = read_config_file(config) if config else {}
    where = str(config) if config else "settings"
    layered: dict[str, Any] = {"loop": {}, "data": {}}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in LOOP_SHORTCUTS:
            layered["loop"][key] = value
            if key == "save_every" and value == 0:  # `--save-every 0`: no checkpoints at all
                layered["loop"]["save_every_seconds"] = 0
        elif key in DATA_SHORTCUTS:
            layered["data"][key] = value
        elif key in ("loop", "data", "adapter_config", "recipe_options") and isinstance(value, Mapping):
            layered.setdefault(key, {}).update(value)
        else:
            layered[key] = value
    merged = merge_settings(values, layered)
    if language:
        file_language = values.get("language")
        if file_language and file_language != language:
            raise SettingsError(f"{where}: language {file_language!r} differs from the command's {language!r}")
        merged["language"] = language
    if "recipe" in merged and isinstance(merged["recipe"], str):
        merged["recipe"] = canonical_recipe_name(merged["recipe"])
    return build_run_settings(merged, where=where)


def adapt(language: str, *, config: str | Path | None = None, base_metrics: Mapping[str, Any] | None = None,
          echo: Callable[[str], None] | None = None, **overrides: Any) -> RunResult:
    """Adapt a base model to ``language`` and write the run folder.

    Args:
        language: ISO 639-3 code.
        config: A TOML or YAML settings file.
        base_metrics: The base model's held-out figures when already known (skips scoring it).
        echo: Where progress lines go (stderr by default).
        overrides: Settings (see :func:`settings_from`).

    Returns:
        The :class:`RunResult`.

    Raises:
        LowresError: On a bad setting, missing data or a run folder that cannot be used.
    """
    return run(settings_from(language, config, **overrides), base_metrics=base_metrics, echo=echo)


def _echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(settings: RunSettings, *, base_metrics: Mapping[str, Any] | None = None,
        echo: Callable[[str], None] | None = None) -> RunResult:
    """Run ``settings`` end to end (see :func:`adapt`)."""
    process = current_process()
    echo = (echo or _echo_stderr) if process.is_main else (lambda line: None)
    if settings.output:
        check_output_path(Path(settings.output))  # before the data and the model load
    data, pack = load_run_data(settings.language, settings.data)
    recipe_name = settings.recipe or (pack.default_recipe if pack is not None else "language")
    recipe = get_recipe(recipe_name)
    if not settings.adapter:
        settings = replace(settings, adapter=recipe.default_adapter)
    model_id = settings.model or (pack.default_model if pack is not None else DEFAULT_MODEL)
    run_dir = Path(settings.output or f"runs/{settings.language}-{recipe.name}-{settings.adapter}")
    settings = _typed_sections(settings, recipe)
    options = options_from(recipe, settings.recipe_options)
    check_recipe_data(recipe, settings, data, pack is not None, echo)
    if _prepare_run_dir(run_dir, settings, process, echo):
        settings = replace(settings, resume=True)

    dtype = base_dtype(*run_placement(settings.loop, process.local_rank))  # bf16/fp16 on a GPU, else float32
    echo(f"loading {model_id}" + (f" in {str(dtype).removeprefix('torch.')}" if dtype is not None else ""))
    model, tokenizer = load_base_model(model_id, dtype=dtype)
    objective = objective_for_config(model.config, model_id)
    loop = resolve_loop_settings(recipe.loop_defaults(objective), settings.loop, where="loop")
    context = RecipeContext(settings=settings, loop=loop, options=options, model=model, tokenizer=tokenizer,
                            objective=objective, data=data, language=settings.language,
                            script=pack.script if pack is not None else "", run_dir=run_dir, process=process,
                            base_model_id=model_id)
    recipe.check_data(context)

    if base_metrics is None and process.is_main:
        base_metrics = _score_base(recipe, context, model_id, echo)
    base_metrics = dict(base_metrics or {})
    if settings.extend_vocab:
        before = tokens_per_character(tokenizer, context.held_out_texts())
        extended = extend_for_run(context, settings.extend_vocab)
        echo(f"vocabulary: +{extended.added_tokens} tokens; held-out tokens/char {before:.3f} -> "
             f"{tokens_per_character(context.tokenizer, context.held_out_texts()):.3f}")
    seed_everything(loop.seed)
    context.handle = recipe.attach(context)
    if dtype is not None:  # the adapter joins the base's dtype; the loop trains float32 master copies
        cast_floating_(context.trained_parameters().values(), dtype)

    stages = list(recipe.stages(options)) or [(recipe.name, recipe, {}, {})]
    results: list[StageResult] = []
    for stage_name, stage_recipe, stage_loop, stage_options in stages:
        single = len(stages) == 1
        stage_dir = run_dir if single else run_dir / "stages" / stage_name
        stage_context = _stage_context(context, stage_recipe, stage_dir, stage_loop, stage_options, single)
        result = _run_stage(stage_name, stage_recipe, stage_context, model_id, base_metrics, echo)
        results.append(result)

    final = results[-1]
    metrics = dict(final.metrics)
    if len(results) > 1 and process.is_main:
        metrics["stages"] = {stage.name: stage.metrics["adapted"] for stage in results}
        _write_top_level(run_dir, context, recipe, model_id, metrics, results)
    if process.is_main:
        finish_output(run_dir)
        _echo_figures(echo, metrics, run_dir)
    process.barrier()
    return RunResult(run_dir=run_dir, settings=settings, recipe=recipe.name, metrics=metrics, stages=results)


def _score_base(recipe: Recipe, context: RecipeContext, model_id: str,
                echo: Callable[[str], None]) -> dict[str, Any]:
    """Score the base model on the held-out data (cached for models with a pinned revision: the recipe's
    figures as one entry, and inside it the held-out scores as the entry ``lowres evaluate`` shares)."""
    if not recipe.scores_base(context):
        return {}
    texts = context.held_out_texts()

    def score() -> dict[str, Any]:
        echo(f"scoring the base model on {len(texts)} held-out texts")
        with weights_autocast(context.model):
            return recipe.evaluate(context, context.model)

    if not recipe.cache_base_scores:
        return score()

    # "held_out_scores": entries written before the shared one existed never filled it, so are not reused
    parts = {"objective": context.objective, "recipe": recipe.name, "options": recipe.base_score_options(context),
             "max_length": context.loop.max_length, "held_out_scores": HELD_OUT_SCORES}
    if low_precision_dtype(context.model) is not None:  # a base loaded in bf16/fp16 scores differently
        parts["weights"] = str(low_precision_dtype(context.model))
    held_out_pairs = [side for pair in context.data.pairs.get("test", [])[:1000] for side in (pair.source, pair.target)]
    return cached_base_scores(model_id, parts, texts + ["\0pairs"] + held_out_pairs, score)


def _typed_sections(settings: RunSettings, recipe: Recipe) -> RunSettings:
    """Read ``[adapter_config]`` and ``[recipe_options]`` as their config classes' field types and fail
    fast (before loading a model) on an unknown adapter type, a bad value or an unknown key."""
    spec = get_registry().adapter_type(settings.adapter)
    adapter_config = typed_values(spec.config_class, settings.adapter_config, "settings", prefix="adapter_config.")
    config_from_dict(spec.config_class, dict(adapter_config), where=f"adapter_config for {settings.adapter}")
    recipe_options = typed_values(recipe.options_class, settings.recipe_options, "settings", prefix="recipe_options.")
    return replace(settings, adapter_config=adapter_config, recipe_options=recipe_options)


def _prepare_run_dir(run_dir: Path, settings: RunSettings, process: Any, echo: Callable[[str], None]) -> bool:
    """Check the output folder (every process, so all of them stop) before any model loads, and mark
    it unfinished (:func:`~lowres_adapters.training.run_folder.prepare_output`); return whether the run
    resumes."""
    stages = [stage for stage in (run_dir / "stages").glob("*") if stage.is_dir()]
    has_checkpoints = bool(checkpoint_steps(run_dir)) or any(checkpoint_steps(stage) for stage in stages)
    resume = prepare_output(run_dir, settings, process.is_main, echo, has_checkpoints=has_checkpoints,
                            has_finished_stage=any(_stage_finished(stage) for stage in stages))
    process.barrier()
    return resume


def check_recipe_data(recipe: Recipe, settings: RunSettings, data: Any, has_pack: bool,
                      echo: Callable[[str], None]) -> None:
    """Before any model loads: say so when pair files are not used by the recipe, and refuse missing
    data the recipe needs (suggesting ``lowres data fetch`` only for a language with a pack)."""
    uses_pairs = "pairs" in recipe.needs
    if settings.data.pairs and not uses_pairs:
        echo(f"note: --pairs is not used: recipe {recipe.name!r} does not train on pairs "
             "(recipes that do: sft, cpt_sft, prompt-align)")
    held_out_from_pairs = [pair.target if pair.target_lang == settings.language else pair.source
                           for pair in data.pairs.get("test", [])]
    held_out = [example.text for example in data.text.get("test", [])]
    if settings.data.eval_pairs and not uses_pairs and held_out != held_out_from_pairs:
        echo(f"note: --eval-pairs is not used: recipe {recipe.name!r} scores the held-out text")
    fetch = f"run `lowres data fetch {settings.language}` or " if has_pack else ""
    if "text" in recipe.needs and not data.text.get("train"):
        raise LowresError(f"recipe {recipe.name!r} needs training text for {settings.language}: {fetch}pass --text FILE")
    if uses_pairs and not data.pairs.get("train"):
        raise LowresError(f"recipe {recipe.name!r} needs parallel pairs for {settings.language}: {fetch}pass --pairs FILE")


def _stage_context(context: RecipeContext, recipe: Recipe, stage_dir: Path, stage_loop: Mapping[str, Any],
                   stage_options: Mapping[str, Any], single: bool) -> RecipeContext:
    """Return the context of one stage: its own loop defaults, options and folder."""
    if single:
        return context
    loop = resolve_loop_settings(recipe.loop_defaults(context.objective),
                                 {**context.settings.loop, **stage_loop}, where=f"loop ({recipe.name} stage)")
    return replace(context, loop=loop, options=options_from(recipe, stage_options), run_dir=stage_dir)


def _describe_training_rows(features: Any, row_length: int) -> str:
    """Return e.g. ``120 training examples packed into 40 rows of 128 tokens`` (without waiting for a
    text file's tokenising pass: then the rows so far are unknown)."""
    known = features.known_sizes() if hasattr(features, "known_sizes") else (len(features), examples_in(features))
    if known is None:
        return "training examples tokenised in the background, segment by segment"
    rows, examples = known
    packed = f" packed into {rows} rows of {row_length} tokens" if rows != examples else ""
    return f"{examples} training examples{packed}"


def _run_stage(name: str, recipe: Recipe, context: RecipeContext, model_id: str, base_metrics: dict[str, Any],
               echo: Callable[[str], None]) -> StageResult:
    """Train one stage and write its folder; a finished stage of a resumed run is loaded, not retrained."""
    stage_dir = context.run_dir
    if context.settings.resume and _stage_finished(stage_dir):
        return _reuse_finished_stage(name, context, stage_dir, echo)
    if context.process.is_main:
        stage_dir.mkdir(parents=True, exist_ok=True)
    context.process.barrier()
    job = recipe.job(context)
    echo(f"{name}: {_describe_training_rows(job.train_features, context.loop.max_length)}, "
         f"{context.loop.max_steps or context.loop.total_steps(len(job.train_features))} steps, "
         f"batch {context.loop.batch_size}, lr {context.loop.lr:g}")
    training = train(job, context.loop, stage_dir, resume=context.settings.resume, process=context.process)
    metrics: dict[str, Any] = {}
    if context.process.is_main:
        with weights_autocast(context.handle.model):
            adapted = recipe.evaluate(context, context.handle.model)
        metrics = {"base": base_metrics, "adapted": adapted, "eval_split": adapted.get("eval_split", "test"),
                   "eval_examples": adapted.get("eval_examples"), "training": training.to_dict()}
        run_config = _run_config(context, recipe, name, model_id)
        metadata = build_metadata(
            handle=context.handle, adapter_type=context.settings.adapter, model_id=model_id,
            objective=context.objective, language=context.language, script=context.script, recipe=name,
            recipe_settings={"loop": run_config["loop"], "options": run_config["recipe_options"]},
            metrics={"base": base_metrics, "adapted": adapted}, datasets=recipe.datasets(context),
            vocabulary=context.state.get("vocabulary"))
        write_run_folder(stage_dir, handle=context.handle, metadata=metadata, metrics=metrics, run_config=run_config,
                         extra_tensors=recipe.artifact_extras(context), base_parameters=context.extra_parameters,
                         tokenizer=context.tokenizer if context.state.get("vocabulary") else None)
    context.process.barrier()
    return StageResult(name=name, run_dir=stage_dir, metrics=metrics, training=training)


def _stage_finished(stage_dir: Path) -> bool:
    return (stage_dir / METADATA_FILE).exists() and not checkpoint_steps(stage_dir)


def _reuse_finished_stage(name: str, context: RecipeContext, stage_dir: Path,
                          echo: Callable[[str], None]) -> StageResult:
    """Load a finished stage's adapter weights into the handle (resuming a multi-stage run)."""
    echo(f"{name}: already finished in {stage_dir}, loading its adapter")
    tensors = read_tensors(stage_dir)
    context.handle.load_adapter_state_dict({k: v for k, v in tensors.items() if not k.startswith("lowres.")})
    metrics = json.loads((stage_dir / "metrics.json").read_text("utf-8"))
    return StageResult(name=name, run_dir=stage_dir, metrics=metrics, training=None)


def _run_config(context: RecipeContext, recipe: Recipe, stage: str, model_id: str) -> dict[str, Any]:
    return {
        "settings": context.settings.to_json(), "recipe": recipe.name, "stage": stage, "model": model_id,
        "objective": context.objective, "adapter": context.settings.adapter,
        "adapter_config": config_to_dict(context.handle.config), "loop": loop_settings_to_json(context.loop),
        "recipe_options": config_to_dict(context.options), "processes": context.process.world_size,
        "library_version": __version__,
    }


def _write_top_level(run_dir: Path, context: RecipeContext, recipe: Recipe, model_id: str,
                     metrics: dict[str, Any], results: list[StageResult]) -> None:
    """Write the multi-stage run's own folder: the final adapter, all stages' figures and logs."""
    run_config = _run_config(context, recipe, "+".join(stage.name for stage in results), model_id)
    run_config["stages"] = [stage.name for stage in results]
    metadata = build_metadata(
        handle=context.handle, adapter_type=context.settings.adapter, model_id=model_id,
        objective=context.objective, language=context.language, script=context.script, recipe=recipe.name,
        recipe_settings={"stages": run_config["stages"], "options": run_config["recipe_options"]},
        metrics={"base": metrics["base"], "adapted": metrics["adapted"], "stages": metrics["stages"]},
        datasets=recipe.datasets(context), vocabulary=context.state.get("vocabulary"))
    write_run_folder(run_dir, handle=context.handle, metadata=metadata, metrics=metrics, run_config=run_config,
                     extra_tensors=recipe.artifact_extras(context), base_parameters=context.extra_parameters,
                     tokenizer=context.tokenizer if context.state.get("vocabulary") else None)
    merge_logs({stage.name: stage.run_dir for stage in results}, run_dir / "train_log.jsonl")
    write_json(run_dir / "metrics.json", metrics)


def _echo_figures(echo: Callable[[str], None], metrics: Mapping[str, Any], run_dir: Path) -> None:
    base = metrics.get("base", {}).get("bits_per_char")
    adapted = metrics.get("adapted", {}).get("bits_per_char")
    if base is not None and adapted is not None:
        change = 100.0 * (adapted - base) / base
        echo(f"bits/char on held-out {metrics.get('eval_split', 'test')} ({metrics.get('eval_examples')} texts): "
             f"base {base:.3f} -> adapted {adapted:.3f} ({change:+.1f}%)")
    task = metrics.get("adapted", {})
    if "task_macro_f1" in task:
        majority = (f" (majority class {task['task_majority_label']!r}: accuracy {task['task_majority_accuracy']:.1f}, "
                    f"macro-F1 {task['task_majority_macro_f1']:.1f})") if "task_majority_macro_f1" in task else ""
        echo(f"task {task.get('task')} on {task.get('task_split')} ({task.get('task_examples')} examples): "
             f"accuracy {task['task_accuracy']:.1f}, macro-F1 {task['task_macro_f1']:.1f}{majority}")
    for stage, figures in metrics.get("stages", {}).items():
        if "bits_per_char" in figures:
            echo(f"  after {stage}: {figures['bits_per_char']:.3f} bits/char")
    echo(f"run folder: {run_dir}")

