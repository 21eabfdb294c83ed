"""Evaluate a run folder on its pack's held-out sets, base and adapted side by side.

What ``lowres evaluate RUN_DIR`` runs: language modelling always (bits per character, per byte,
perplexity; pseudo-perplexity for masked LMs), translation by generation when the data has
held-out pairs (BLEU, chrF, chrF++), and, with ``report_dir``, a Markdown + HTML report with plots
and the layer-wise analysis.
"""

from __future__ import annotations

import copy
import gc
import json as json_module
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from lowres_adapters.artifact import METRICS_FILE, ArtifactMetadata, read_metadata
from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.languages import language_name
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.card_metrics import metrics_for_card
from lowres_adapters.evaluation.generation import (
    GENERATION_FIELDS,
    MIN_ANSWER_TOKENS,
    GenerationSettings,
    generate_answers,
)
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.evaluation.output_checks import distinct_output_share, repeated_ngram_rate, target_language_share
from lowres_adapters.evaluation.report import write_report
from lowres_adapters.evaluation.translation import (
    length_ratio_of,
    make_prompt,
    resolve_prompt_format,
    score_translations,
    translation_inputs,
)
from lowres_adapters.evaluation.work_pool import WorkPool, run_side_by_side
from lowres_adapters.io import atomic_write_text
from lowres_adapters.merge import check_mergeable
from lowres_adapters.models import load_base_model, load_tokenizer, objective_facts
from lowres_adapters.runs.analysis import BASE, analyze
from lowres_adapters.runs.snapshots import is_run_folder, load_run, merge_into_weights
from lowres_adapters.task_loading import load_task_model
from lowres_adapters.training.base_scores import HELD_OUT_SCORES, cached_base_scores, held_out_parts
from lowres_adapters.training.run_data import load_run_data
from lowres_adapters.training.settings import DataSettings
from lowres_adapters.training.task_scoring import evaluate_task

__all__ = ["evaluate_run", "metrics_for_card", "HeldOut"]

RUN_CONFIG_FILE = "run_config.json"
TASK_HEAD_FILE = "task_head.json"
UNSPACED_SCRIPTS = frozenset({"Tibt", "Thai", "Laoo", "Khmr", "Mymr", "Hani", "Hans", "Hant", "Jpan"})
"""Scripts without spaces between words: BLEU uses sacrebleu's ``char`` tokenizer for them."""
LM_FIGURES = ("bits_per_char", "bits_per_byte", "perplexity", "pseudo_perplexity", "loss_per_token", "tokens",
              "chars")
TRANSLATION_FIGURES = ("bleu", "chrf", "chrf_pp")
OUTPUT_FIGURES = ("target_language_share", "repeated_ngram_rate", "distinct_output_share")
SAMPLES = 5
BASE_PROMPTS = ("auto", "run", "plain", "chat")
"""How the base model is asked: ``auto`` uses its chat template when it has one (an instruction-tuned
base answers its own format), ``run`` asks what the run's adapter was trained on."""


@dataclass
class HeldOut:
    """The held-out data a run is evaluated on.

    Attributes:
        texts: Texts for language modelling.
        sources: Source sides of the held-out pairs, translated into ``target_lang``.
        references: Gold translations.
        source_lang: ISO 639-3 code of the sources ("" without pairs).
        target_lang: ISO 639-3 code of the references.
        tasks: The pack's downstream tasks (name -> ``TaskData``).
    """

    texts: list[str]
    sources: list[str]
    references: list[str]
    source_lang: str = ""
    target_lang: str = ""
    tasks: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str | None:
        """Return ``"eng->nya"`` style, or None without pairs."""
        return f"{self.source_lang}->{self.target_lang}" if self.sources else None


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in ``path`` ({} when missing), with one clear line when invalid."""
    if not path.exists():
        return {}
    try:
        value = json_module.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json_module.JSONDecodeError) as error:
        raise LowresError(f"{path}: invalid JSON ({error})") from None
    return value if isinstance(value, dict) else {}


def held_out_data(metadata: ArtifactMetadata, run_config: Mapping[str, Any], *, max_examples: int | None,
                  translation_examples: int) -> HeldOut:
    """Return the held-out texts and pairs the run was evaluated on (its files or its pack's test split)."""
    language = metadata.language
    data = config_from_dict(DataSettings, dict(run_config.get("settings", {}).get("data", {})),
                            where=f"{RUN_CONFIG_FILE} data")
    pack_data, _ = load_run_data(language, data)
    limit = max_examples if max_examples is not None else data.eval_examples
    texts = [example.text for example in pack_data.text.get("test", [])]
    texts = texts if limit is None else texts[:limit]
    if not texts:
        raise LowresError(f"no held-out text for {language!r}: the pack has no test split and the run no --eval-text")
    pairs = pack_data.pairs.get("test", [])
    into = [pair for pair in pairs if pair.target_lang == language]
    out_of = [(pair.target, pair.source, pair.target_lang, pair.source_lang) for pair in pairs
              if pair.source_lang == language]
    chosen = [(pair.source, pair.target, pair.source_lang, pair.target_lang) for pair in into] or out_of
    # One direction only: the prompt names the first pair's languages (dzo's test pairs mix zho and eng sources).
    chosen = [item for item in chosen if item[2:] == chosen[0][2:]]
    count = min(translation_examples, limit) if limit is not None else translation_examples
    chosen = chosen[:count]
    return HeldOut(texts=texts, sources=[source for source, *_ in chosen],
                   references=[target for _, target, *_ in chosen],
                   source_lang=chosen[0][2] if chosen else "", target_lang=chosen[0][3] if chosen else "",
                   tasks=dict(pack_data.tasks))


def translation_prompt(tokenizer: Any, source_lang: str, target_lang: str, *, prompt_format: str = "plain",
                       template: str | None = None) -> Callable[[str], str]:
    """Return the prompt builder for a direction: the run's SFT instruction (format and template), else the default.

    The SFT recipe trains on ``template.format(source=..., source_name=..., target_name=...)``
    (in the tokenizer's chat template with ``prompt_format="chat"``) followed by the answer, so
    evaluation asks the same question.
    """
    return make_prompt(tokenizer, language_name(source_lang), language_name(target_lang),
                       prompt_format=prompt_format, template=template)


def prompt_for(role: str, tokenizer: Any, held_out: HeldOut, options: Mapping[str, Any]) -> tuple[Callable, str]:
    """Return ``(prompt builder, format)`` for the ``"base"`` or ``"adapted"`` model.

    The adapted model is asked in its run's format; the base as ``options["base_prompt"]`` says.
    """
    run_format = resolve_prompt_format(options.get("prompt_format") or "plain", tokenizer)
    template = options.get("prompt")
    chosen = options.get("base_prompt", "auto") if role == "base" else "run"
    if chosen == "auto":
        chosen = "chat" if getattr(tokenizer, "chat_template", None) else "run"
    if chosen == "run" or chosen == run_format:
        return translation_prompt(tokenizer, held_out.source_lang, held_out.target_lang, prompt_format=run_format,
                                  template=template), run_format
    return translation_prompt(tokenizer, held_out.source_lang, held_out.target_lang, prompt_format=chosen), chosen


class ModelOnDemand:
    """A model loaded the first time it is needed: a base whose figures are all cached is never loaded.

    Safe to share between the phases that run side by side: the model is loaded once.
    """

    def __init__(self, load: Callable[[], Any]):
        self._load, self._model = load, None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """Return the model, loading it on the first call."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model


Remember = Callable[[str, Mapping[str, Any], list, Callable[[], dict]], dict]
"""``remember(what, parts, texts, compute)``: a stored result for the key, else ``compute()``'s."""


def _compute(what: str, parts: Mapping[str, Any], texts: list, compute: Callable[[], dict]) -> dict:
    return compute()


def evaluate_model(model: Any, tokenizer: Any, held_out: HeldOut, *, objective: str, script: str,
                   options: Mapping[str, Any], say: Callable[[str], None], label: str,
                   remember: Remember = _compute) -> tuple[dict, dict]:
    """Return ``(figures, extras)`` of one model: LM figures, translation figures, signatures and outputs.

    ``options`` as :func:`evaluate_run` builds them; ``options["score_text"] = False`` leaves the
    language-modelling figures out (translation only); ``options["pool"]`` (a running
    :class:`~lowres_adapters.evaluation.work_pool.WorkPool`) runs held-out scoring and generation
    side by side on its workers. ``model`` may be a :class:`ModelOnDemand`. ``remember`` is asked
    for the held-out scores (``"held-out scores"``: keyed by objective, scoring length and texts)
    and the hypotheses (``"translations"``: keyed by the prompts, answer caps and decoding settings)
    before they are computed; the figures derived from them are always recomputed.
    """
    load = model.get if isinstance(model, ModelOnDemand) else (lambda: model)
    progress = options.get("progress")
    pool = options.get("pool") or WorkPool()
    score_text = options.get("score_text", True)
    translate = bool(held_out.sources) and not objective_facts(objective).masked
    # a fast tokenizer is not safe to share between threads: the scoring phase gets its own
    scoring_tokenizer = copy.deepcopy(tokenizer) if pool.parallel and score_text and translate else tokenizer

    def held_out_scores() -> dict:
        def score() -> dict:
            return score_texts(load(), scoring_tokenizer, held_out.texts, objective=objective,
                               batch_size=options["batch_size"], max_length=options["max_length"],
                               progress=f"{label}: scoring" if progress else None, pool=pool).to_dict()

        return remember(HELD_OUT_SCORES, held_out_parts(objective, options["max_length"]), list(held_out.texts),
                        score)

    phases: list[Callable[[], Any]] = [held_out_scores] if score_text else []
    if translate:
        prompt, prompt_format = prompt_for(label, tokenizer, held_out, options)
        settings = GenerationSettings(**{**options["generation"], "length_ratio": length_ratio_of(
            tokenizer, held_out.sources, held_out.references)})
        inputs = translation_inputs(tokenizer, held_out.sources, prompt, settings)

        def generate() -> dict:
            return {"hypotheses": generate_answers(
                load(), tokenizer, inputs.prompts, inputs.budgets, settings=settings,
                batch_size=options["generation_batch_size"], add_special_tokens=inputs.add_special_tokens,
                progress=f"{label}: translating" if progress else None, pool=pool)}

        parts = {"settings": settings.to_dict(), "budgets": inputs.budgets, "stop_at_newline": True,
                 "add_special_tokens": inputs.add_special_tokens, "min_answer_tokens": MIN_ANSWER_TOKENS}
        phases.append(lambda: list(remember("translations", parts, list(inputs.prompts), generate)["hypotheses"]))
    results = run_side_by_side(pool, *phases)

    figures: dict[str, Any] = {}
    if score_text:
        scores = results.pop(0)
        figures = {key: value for key, value in scores.items() if key in LM_FIGURES}
        say(f"{label}: bits/char {scores['bits_per_char']:.4f} on {len(held_out.texts)} held-out texts")
    extras: dict[str, Any] = {}
    if translate:
        hypotheses = results.pop(0)
        translation = score_translations(hypotheses, held_out.references,
                                         bleu_tokenize="char" if script in UNSPACED_SCRIPTS else None)
        figures.update({key: getattr(translation, key) for key in TRANSLATION_FIGURES})
        figures.update(target_language_share=target_language_share(hypotheses, held_out.texts, held_out.sources),
                       repeated_ngram_rate=repeated_ngram_rate(hypotheses),
                       distinct_output_share=distinct_output_share(hypotheses))
        extras = {"signatures": {"bleu": translation.bleu_signature, "chrf": translation.chrf_signature,
                                 "chrf_pp": translation.chrf_pp_signature},
                  "hypotheses": hypotheses, "prompt_format": prompt_format, "generation": settings.to_dict()}
        say(f"{label}: chrF {translation.chrf:.2f}, chrF++ {translation.chrf_pp:.2f}, BLEU {translation.bleu:.2f} "
            f"on {len(held_out.sources)} {held_out.direction} pairs ({prompt_format} prompt); "
            f"{figures['target_language_share']:.0%} in {held_out.target_lang}, "
            f"repeated n-grams {figures['repeated_ngram_rate']:.0%}, distinct outputs {figures['distinct_output_share']:.0%}")
    return figures, extras


def _evaluate_base(metadata: ArtifactMetadata, held_out: HeldOut, options: Mapping[str, Any],
                   say: Callable[[str], None]) -> tuple[dict, dict]:
    """Return the base model's ``(figures, extras)``, its scores and hypotheses from the base-score cache.

    For a model with a pinned revision, the held-out scores are cached per objective, scoring
    length and texts, and the hypotheses per prompts, answer caps and decoding settings (the
    prompts hold the sources, the instruction and the chat template), so a cached entry is what
    computing again would give and a change of one of them recomputes only that part. The model
    is loaded only when something is missing.
    """
    tokenizer = load_tokenizer(metadata.base_model, revision=metadata.base_model_revision)
    computed: list[str] = []

    def load() -> Any:
        say(f"scoring the base model {metadata.base_model}")
        model, _ = load_base_model(metadata.base_model, metadata.objective, revision=metadata.base_model_revision)
        return model

    def remember(what: str, parts: Mapping[str, Any], texts: list, compute: Callable[[], dict]) -> dict:
        def counted() -> dict:
            computed.append(what)
            return compute()
        key = {"what": f"lowres evaluate: {what}", **parts}  # held-out scores: the entry adapt shares (its own "what")
        return cached_base_scores(metadata.base_model, key, texts, counted)

    figures, extras = evaluate_model(ModelOnDemand(load), tokenizer, held_out, objective=metadata.objective,
                                     script=metadata.script, options=options, say=say, label="base",
                                     remember=remember)
    if not computed:
        say(f"base model {metadata.base_model}: scores and translations from the base-score cache")
    gc.collect()
    return figures, extras


def inference_model(loaded: Any) -> Any:
    """Return the module to evaluate a loaded run with: the adapter folded into the weights it adapts when
    its type allows (LoRA, (IA)^3: the same function without the adapter's extra work per token), else
    the loaded model as it is.
    """
    handle = loaded.handle
    if getattr(handle, "trains_base_weights", False) or getattr(handle, "model", None) is not loaded.model:
        return loaded.model
    try:
        check_mergeable(loaded.metadata, "")
    except LowresError:
        return loaded.model
    module, merged = merge_into_weights(handle)
    return module.eval() if merged else loaded.model


def evaluate_task_run(run_dir: Path, tasks: Mapping[str, Any], *, max_examples: int | None,
                      batch_size: int) -> dict[str, Any]:
    """Return the task figures of a task run (one with ``task_head.json``), or {} for other runs.

    The task model is rebuilt by the task recipe (base + language adapter(s) + task adapter + head)
    and scored on the split the run was scored on.
    """
    head_file = run_dir / TASK_HEAD_FILE
    if not head_file.exists():
        return {}

    description = read_json(head_file)
    task_name = description.get("task", "")
    if task_name not in tasks:
        raise LowresError(f"{head_file}: task {task_name!r} is not in the language pack's data")
    split = read_json(run_dir / RUN_CONFIG_FILE).get("recipe_options", {}).get("eval_split", "test")
    examples = list(tasks[task_name].splits.get(split, []))[:max_examples]
    if not examples:
        raise LowresError(f"task {task_name!r} has no {split!r} examples to score")
    model, head, tokenizer, task = load_task_model(run_dir)
    scores = evaluate_task(model, head, tokenizer, task, examples, batch_size=batch_size)
    return {"task": task_name, "task_split": split, "task_examples": len(examples),
            "figures": {key: value for key, value in scores.items() if key != "examples"}}


def evaluate_run(run_dir: str | Path, *, json: bool = False, report_dir: str | Path | None = None,
                 max_examples: int | None = None, translation_examples: int = 32, num_beams: int | None = None,
                 max_new_tokens: int | None = None, no_repeat_ngram_size: int | None = None,
                 repetition_penalty: float | None = None, batch_size: int = 8, generation_batch_size: int = 16,
                 max_length: int = 512, base_prompt: str = "auto", layers: bool = True, skip_base: bool = False,
                 progress: bool = True, record: bool = True, workers: int | None = None,
                 echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate a run folder, base model and adapted model side by side.

    Args:
        run_dir: A run folder written by ``lowres adapt`` (or any artifact folder).
        json: Machine-readable mode: no progress lines, even when ``echo`` is given.
        report_dir: Also write ``report.md``, ``report.html``, ``evaluation.json`` and PNG plots here.
        max_examples: Held-out texts (and at most as many pairs) to use; default: as many as the run
            used (``eval_examples``, 300 by default).
        translation_examples: Held-out pairs translated per model (generation is the slow part).
        num_beams: Beam size for translation (None: the run's ``recipe_options``, else 4).
        max_new_tokens: Longest generated translation (None: the run's, else 256).
        no_repeat_ngram_size: Never repeat an n-gram of this many tokens (None: the run's, else 0 = off).
        repetition_penalty: CTRL repetition penalty (None: the run's, else 1.0 = off).
        batch_size: Texts per forward pass when scoring.
        generation_batch_size: Prompts per ``generate`` call (each with ``num_beams`` rows).
        max_length: Longest scored window in tokens.
        base_prompt: How the base model is asked (:data:`BASE_PROMPTS`): ``auto`` uses its chat
            template when it has one.
        layers: With ``report_dir``: add the layer-wise analysis (loads the checkpoints again).
        skip_base: Take the base figures from ``metrics.json`` instead of scoring the base model.
        progress: Progress bars on stderr for scoring and generation (never in ``json`` mode).
        record: Write the figures and the decoding settings into the run's ``metrics.json``
            (under ``"evaluate"``).
        workers: CPU cores to score and generate on, one single-threaded worker each, side by side
            (:mod:`~lowres_adapters.evaluation.work_pool`; the same figures); None: PyTorch's
            thread count (``OMP_NUM_THREADS``).
        echo: Where progress lines go (None: nowhere).

    Returns:
        ``{"base": {...}, "adapted": {...}, "eval_split", "eval_examples", "translation_direction",
        "signatures", "samples", "card_metrics", ...}``; ``base`` and ``adapted`` hold
        ``bits_per_char`` always and ``chrf``/``chrf_pp``/``bleu`` when the data has pairs.
    """
    run_dir = Path(run_dir)
    say = (lambda message: None) if json or echo is None else echo
    if base_prompt not in BASE_PROMPTS:
        raise LowresError(f"base_prompt must be one of {', '.join(BASE_PROMPTS)}, got {base_prompt!r}")
    metadata = read_metadata(run_dir)
    run_config = read_json(run_dir / RUN_CONFIG_FILE)
    held_out = held_out_data(metadata, run_config, max_examples=max_examples,
                             translation_examples=translation_examples)
    recipe_options = run_config.get("recipe_options", {})
    generation = generation_settings(recipe_options, num_beams=num_beams, max_new_tokens=max_new_tokens,
                                     no_repeat_ngram_size=no_repeat_ngram_size,
                                     repetition_penalty=repetition_penalty)
    options = {"batch_size": batch_size, "max_length": max_length, "generation_batch_size": generation_batch_size,
               "generation": generation.to_dict(), "prompt": recipe_options.get("prompt"),
               "prompt_format": recipe_options.get("prompt_format", "plain"), "base_prompt": base_prompt,
               "progress": progress and not json}
    figures: dict[str, dict[str, Any]] = {}
    extras: dict[str, dict[str, Any]] = {}
    recorded = read_json(run_dir / METRICS_FILE)
    with WorkPool(workers if workers is not None else torch.get_num_threads()) as pool:
        options["pool"] = pool
        if skip_base and recorded.get("base"):
            figures["base"], extras["base"] = dict(recorded["base"]), {}
        else:
            figures["base"], extras["base"] = _evaluate_base(metadata, held_out, options, say)
        say(f"scoring the adapted model {run_dir}")
        loaded = load_run(run_dir)
        figures["adapted"], extras["adapted"] = evaluate_model(
            inference_model(loaded), loaded.tokenizer, held_out, objective=metadata.objective, script=metadata.script,
            options=options, say=say, label="adapted")
        del loaded
        gc.collect()

    results: dict[str, Any] = {
        "run_dir": str(run_dir), "language": metadata.language, "script": metadata.script,
        "base_model": metadata.base_model, "adapter_type": metadata.adapter_type, "recipe": metadata.recipe,
        "objective": metadata.objective, "eval_split": "test", "eval_examples": len(held_out.texts),
        "base": figures["base"], "adapted": figures["adapted"],
    }
    if held_out.sources and not objective_facts(metadata.objective).masked:
        results.update(
            translation_direction=held_out.direction, translation_examples=len(held_out.sources),
            generation=extras["adapted"].get("generation", generation.to_dict()),  # with the calibrated length ratio
            prompt_formats={role: extras[role].get("prompt_format") for role in ("base", "adapted")},
            signatures=extras["adapted"].get("signatures", {}),
            samples=[{"source": source, "reference": reference,
                      "base": extras["base"].get("hypotheses", [None] * SAMPLES)[index],
                      "adapted": extras["adapted"]["hypotheses"][index]}
                     for index, (source, reference) in enumerate(zip(held_out.sources[:SAMPLES],
                                                                      held_out.references[:SAMPLES]))])
    task = evaluate_task_run(run_dir, held_out.tasks, max_examples=max_examples, batch_size=batch_size)
    if task:
        results["adapted"].update(task.pop("figures"))
        results.update(task)
        say(f"task {task['task']}: " + ", ".join(f"{key} {results['adapted'][key]:.2f}" for key in
                                                 ("accuracy", "macro_f1", "entity_f1", "exact_match", "f1")
                                                 if key in results["adapted"]))
    if recorded.get("stages"):
        results["stages"] = recorded["stages"]
    results["card_metrics"] = metrics_for_card(results)
    if record:
        record_in_metrics(run_dir, results)
    if report_dir is not None:
        analyses = run_analyses(run_dir, held_out.texts[:32], say) if layers else {}
        written = write_report(Path(report_dir), run_dir, results, analyses)
        say(f"report written to {written}")
    return results


def generation_settings(recipe_options: Mapping[str, Any], **given: Any) -> GenerationSettings:
    """Return the decoding settings: the ones given (not None), else the run's ``recipe_options``, else the defaults."""
    values = {key: recipe_options[key] for key in GENERATION_FIELDS if recipe_options.get(key) is not None}
    values.update({key: value for key, value in given.items() if value is not None})
    values.pop("length_ratio", None)  # calibrated per direction from the held-out pairs
    return GenerationSettings(**values)


def record_in_metrics(run_dir: Path, results: Mapping[str, Any]) -> None:
    """Write the evaluation's figures, decoding settings and prompt formats into ``metrics.json`` (``"evaluate"``)."""
    path = run_dir / METRICS_FILE
    metrics = read_json(path)
    keys = ("eval_split", "eval_examples", "base", "adapted", "translation_direction", "translation_examples",
            "generation", "prompt_formats", "signatures")
    metrics["evaluate"] = {key: results[key] for key in keys if key in results}
    atomic_write_text(path, json_module.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")


def stage_pairs(run_dir: Path) -> list[tuple[str, str | Path, Path]]:
    """Return the consecutive comparisons of a run: ``[(title, before, after)]``.

    A multi-stage run (``stages/cpt``, ``stages/sft``) gives base -> cpt and cpt -> sft; a
    single-stage run gives base -> run.
    """
    stages_dir = run_dir / "stages"
    recorded = read_json(run_dir / RUN_CONFIG_FILE).get("stages")
    names = list(recorded) if isinstance(recorded, list) else sorted(
        path.name for path in stages_dir.glob("*") if is_run_folder(path))
    stages = [stages_dir / name for name in names if is_run_folder(stages_dir / name)]
    if not stages:
        return [("base -> adapted", BASE, run_dir)]
    comparisons: list[tuple[str, str | Path, Path]] = [(f"base -> {stages[0].name}", BASE, stages[0])]
    for before, after in zip(stages, stages[1:]):
        comparisons.append((f"{before.name} -> {after.name}", before, after))
    return comparisons


def run_analyses(run_dir: Path, texts: Sequence[str], say: Callable[[str], None]) -> dict[str, Any]:
    """Return the layer-wise analyses of a run's consecutive checkpoints, by title."""
    analyses = {}
    for title, before, after in stage_pairs(run_dir):
        say(f"layer-wise analysis: {title}")
        analyses[title] = analyze(before, after, texts=texts)
        gc.collect()
    return analyses
