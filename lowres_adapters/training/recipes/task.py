"""The ``task`` recipe (MAD-X): a task adapter + head stacked on a frozen language adapter.

The language adapter comes from a run folder (``--lang-adapter RUN_DIR``), loaded frozen with
``artifact.attach_from_artifact``; with ``fuse_with`` several language adapters (e.g. the text and
the graph adapter) are fused (AdapterFusion) under the task adapter and the fusion layer trains
too. A task adapter (default ``seq_bn``, reduction factor 16) is stacked on top,
``Stack(lang, task)``, with a head (sequence classification, token classification or extractive
QA); only the task adapter, the head (and a fusion layer) train. Without ``--lang-adapter`` the
task adapter sits on the bare base model (the baseline). Scores: accuracy and macro-F1, seqeval
entity F1, or SQuAD EM/F1 on the task's test split; ``--seeds 1,2,3`` gives mean ± std.

The run folder is an artifact of the task adapter; the head is saved under ``lowres.head.`` and
:func:`lowres_adapters.task_loading.load_task_model` rebuilds base + language adapter(s) + task adapter + head.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lowres_adapters.artifact import atomic_write_text
from lowres_adapters.composition import stack
from lowres_adapters.configs import config_to_dict
from lowres_adapters.data.examples import TaskData
from lowres_adapters.errors import LowresError
from lowres_adapters.task_loading import (  # noqa: F401  (load_task_model: re-exported from the loading side)
    TASK_HEAD_FILE,
    attach_artifact_adapter,
    attach_language_stack,
    load_task_model,
)
from lowres_adapters.training.heads import (
    HEAD_PREFIX,
    POOLINGS,
    HeadConfig,
    TaskHead,
    backbone_of,
    balanced_class_weights,
    build_head,
    hidden_size_of,
    keep_layers,
    labelling,
    labels_per_example,
    last_hidden_states,
)
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.recipes.base import Recipe, RecipeContext, attach_adapter, score_held_out
from lowres_adapters.training.task_features import TaskCollator, encode_examples
from lowres_adapters.training.task_scoring import calibrate_head, evaluate_task, refit_head, score_predictions

DECODER_DEFAULTS = {"lr": 1e-4, "batch_size": 16, "max_length": 64, "max_steps": 10, "schedule": "linear",
                    "warmup_ratio": 0.05}
DECODER_FEATURE_LAYER = 4
"""Layers a decoder keeps under its task adapter unless ``feature_layer`` says otherwise. On SmolLM2-135M
(dzo ``help_module``) layer 4's pooled features classify nearly as well as the last layer's at equal
training examples, and cost a seventh per example, so the head can be refitted on every training
example within the CPU budget: macro-F1 26.7 (all 30 layers, 1,600 refit examples, seed 0) -> 33.5 ± 1.3
(4 seeds; docs/transfer.md)."""
REFIT_HEAD_MEMBERS = 3
"""Heads a refitted sequence head averages unless ``head_members`` says otherwise. One head refitted
on frozen layer-4 features of dzo ``help_module`` scores 33.9 ± 2.2 macro-F1 over init seeds; three
averaged, 36.0 ± 1.5 (``benchmarks/results/task-heads.md``), at three times the refit's cost."""
CALIBRATION_EXAMPLES = 256
"""Training examples whose features, through the trained model, set the head's statistics."""
ENCODER_DEFAULTS = {"lr": 1e-4, "batch_size": 16, "max_length": 128, "epochs": 10.0, "schedule": "linear",
                    "warmup_ratio": 0.0}


@dataclass(frozen=True)
class TaskOptions:
    """Options of the ``task`` recipe (``[recipe_options]``).

    Attributes:
        task: Name of the pack's task (``lowres data stats LANG``); empty picks the only one.
        lang_adapter: Run folder of the language adapter to stack on (frozen); empty = none.
        fuse_with: More language-adapter run folders, fused with ``lang_adapter`` (AdapterFusion).
        fusion: AdapterFusion kind, ``dynamic`` or ``static``.
        pooling: Sequence pooling of the classification head: mean, first or last.
        feature_layer: Keep only the model's first N layers; the head reads layer N's output
            (``heads.keep_layers``). 0 keeps them all; None (default): a decoder keeps its first
            :data:`DECODER_FEATURE_LAYER`, an encoder all of them.
        head_layers: 2 (dense + tanh + output, as AdapterHub) or 1 (linear).
        head_dropout: Dropout before the head.
        head_members: Independent heads averaged (``HeadConfig.members``): each is trained and
            refitted on its own loss, the prediction is the mean of their logits. None (default):
            :data:`REFIT_HEAD_MEMBERS` when the head is refitted (sequence classification,
            ``refit_examples`` not 0), else 1.
        head_member_size: Width of each member's dense layer (None: the hidden size).
        eval_split: Split scored before and after: ``test`` (or ``validation`` while tuning).
        max_eval_examples: Score at most this many examples of that split, drawn with
            ``selection_seed`` (splits are often ordered by class or page); None = all.
        selection_seed: Seed of the draw of ``--max-examples`` training examples and of
            ``max_eval_examples`` evaluation examples.
        balance_classes: Weigh each class's cross-entropy by ``n / (classes * count)`` over the
            training examples (classification and tagging), so rare classes count as much as
            frequent ones: what macro-F1 rewards. Off: plain cross-entropy.
        refit_examples: Sequence classification: after training, refit the head full batch on the
            pooled features of this many training examples through the trained model
            (``task_scoring.refit_head``); None (default) = all of them; 0 = keep the head as trained.
        refit_steps: Full-batch steps of that refit.
        score_text: Also score held-out bits per character before and after training (a forward
            pass over the held-out texts at up to 512 tokens each, twice); off by default, as the
            task's own figures are what a task adapter is for.
    """

    task: str = ""
    lang_adapter: str = ""
    fuse_with: tuple[str, ...] = ()
    fusion: str = "dynamic"
    pooling: str = "mean"
    feature_layer: int | None = None
    head_layers: int = 2
    head_dropout: float = 0.1
    head_members: int | None = None
    head_member_size: int | None = None
    eval_split: str = "test"
    max_eval_examples: int | None = None
    selection_seed: int = 0
    balance_classes: bool = True
    refit_examples: int | None = None
    refit_steps: int = 150
    score_text: bool = False

    def __post_init__(self) -> None:
        if self.fuse_with and not self.lang_adapter:
            raise ValueError("fuse_with needs lang_adapter (the first adapter of the fusion)")
        if self.fusion not in ("dynamic", "static"):
            raise ValueError("fusion must be 'dynamic' or 'static'")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}")
        if self.head_layers not in (1, 2):
            raise ValueError("head_layers must be 1 or 2")
        if (self.refit_examples is not None and self.refit_examples < 0) or self.refit_steps < 1:
            raise ValueError("refit_examples must be >= 0 and refit_steps >= 1")
        if self.feature_layer is not None and self.feature_layer < 0:
            raise ValueError("feature_layer must be >= 0 (0 keeps every layer)")
        if (self.head_members is not None and self.head_members < 1) or (self.head_member_size is not None and self.head_member_size < 1):
            raise ValueError("head_members and head_member_size must be >= 1")
        if not 0 <= self.head_dropout < 1:
            raise ValueError("head_dropout must be in [0, 1)")
        if self.eval_split not in ("test", "validation"):
            raise ValueError("eval_split must be 'test' or 'validation'")
        if self.max_eval_examples is not None and self.max_eval_examples < 1:
            raise ValueError("max_eval_examples must be >= 1")


def chosen_task(context: RecipeContext) -> tuple[str, TaskData]:
    """Return the task named in the options (or the pack's only task)."""
    tasks = context.data.tasks
    name = context.options.task
    if not tasks:
        raise LowresError(f"the task recipe needs a labelled task; {context.language} has none "
                          "(see `lowres data stats LANG`)")
    if not name:
        if len(tasks) > 1:
            raise LowresError(f"{context.language} has several tasks ({', '.join(sorted(tasks))}): "
                              "choose one with --set recipe_options.task=NAME")
        name = next(iter(tasks))
    if name not in tasks:
        raise LowresError(f"unknown task {name!r} for {context.language}; available: {', '.join(sorted(tasks))}")
    return name, tasks[name]


def evaluation_examples(task: TaskData, options: TaskOptions) -> list[Any]:
    """Return the examples scored: the whole ``eval_split``, or ``max_eval_examples`` of them drawn
    with ``selection_seed`` (kept in split order)."""
    examples = list(task.splits[options.eval_split])
    limit = options.max_eval_examples
    if limit is None or limit >= len(examples):
        return examples
    chosen = sorted(random.Random(options.selection_seed).sample(range(len(examples)), limit))
    return [examples[index] for index in chosen]


def majority_figures(task: TaskData, examples: list[Any]) -> dict[str, Any]:
    """Return the scores of always predicting the training split's most frequent label on
    ``examples`` (``task_majority_*``), the floor a classifier must clear; empty for other kinds."""
    if labelling(task.kind) != "one" or not task.splits.get("train"):
        return {}
    label = Counter(example.label for example in task.splits["train"]).most_common(1)[0][0]
    scores = score_predictions(task, examples, [label] * len(examples))
    return {"task_majority_label": label, "task_majority_accuracy": scores["accuracy"],
            "task_majority_macro_f1": scores["macro_f1"]}


def attach_language_adapters(model: Any, options: TaskOptions) -> tuple[Any, Any]:
    """Attach the frozen language adapter(s) named in ``options``; return ``(lower handle, tokenizer or None)``."""
    folders = [Path(options.lang_adapter), *map(Path, options.fuse_with)]
    return attach_language_stack(model, folders, options.fusion)


def resolved_feature_layer(options: TaskOptions, masked: bool, layers: int | None) -> int:
    """Return the layers to keep (0: all): ``feature_layer`` when given, else
    :data:`DECODER_FEATURE_LAYER` for a decoder deeper than that, else all."""
    if options.feature_layer is not None:
        return options.feature_layer
    if masked or layers is None or layers <= DECODER_FEATURE_LAYER:
        return 0
    return DECODER_FEATURE_LAYER


def cut_layers(model: Any, layers: int) -> None:
    """Keep the first ``layers`` layers (0: all): after the language adapters, before the task adapter."""
    if layers:
        try:
            keep_layers(model, layers)
        except ValueError as error:
            raise LowresError(f"recipe_options.feature_layer: {error}") from None



class TaskRecipe(Recipe):
    """A task adapter + head on a frozen language adapter (MAD-X), or on fused language adapters."""

    name = "task"
    description = "task adapter + head stacked on a frozen language adapter (MAD-X), or on fused ones"
    options_class = TaskOptions
    needs = ("tasks",)
    default_adapter = "seq_bn"

    def loop_defaults(self, objective: str) -> dict[str, Any]:
        """Return encoder defaults after the paper (lr 1e-4, batch 16) or short decoder defaults."""
        return dict(ENCODER_DEFAULTS if objective.masked else DECODER_DEFAULTS)

    def check_data(self, context: RecipeContext) -> None:
        """Check the task exists and has train and evaluation examples."""
        name, task = chosen_task(context)
        split = context.options.eval_split
        for needed in ("train", split):
            if not task.splits.get(needed):
                raise LowresError(f"task {name!r} of {context.language} has no {needed!r} examples")

    def attach(self, context: RecipeContext) -> Any:
        """Load the language adapter(s) frozen, attach the task adapter and head, stack, activate."""
        options = context.options
        lower = None
        if options.lang_adapter:
            lower, tokenizer = attach_language_adapters(context.model, options)
            if tokenizer is not None:
                context.tokenizer = tokenizer
        body_layers = getattr(backbone_of(context.model), "layers", None)
        keep = resolved_feature_layer(options, context.objective.masked,
                                      len(body_layers) if isinstance(body_layers, torch.nn.ModuleList) else None)
        cut_layers(context.model, keep)
        if keep:
            context.state["reads"] = f"; the head reads layer {keep} of {len(body_layers)} (recipe_options.feature_layer)"
        context.options = options = replace(options, feature_layer=keep)  # recorded resolved: load_task_model cuts alike
        task_name, task = chosen_task(context)
        if not context.settings.adapter_name:
            context.settings = replace(context.settings, adapter_name=f"task_{task_name}")
        upper = attach_adapter(context)
        num_labels = labels_per_example(task.kind)[1] or len(task.labels)
        if options.head_members is None:
            refitted = labelling(task.kind) == "one" and options.refit_examples != 0
            context.options = options = replace(options, head_members=REFIT_HEAD_MEMBERS if refitted else 1)
        head = build_head(HeadConfig(kind=task.kind, num_labels=num_labels, hidden_size=hidden_size_of(context.model),
                                     pooling=options.pooling, dropout=options.head_dropout,
                                     layers=options.head_layers, members=options.head_members,
                                     member_size=options.head_member_size), context.model)
        context.state["head"] = head
        context.state["task"] = (task_name, task)
        if lower is None:
            return upper
        handle = stack(lower, upper, train_lower=bool(options.fuse_with))
        handle.activate()
        return handle

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the job: task examples -> head loss on the stacked model's last hidden states."""
        task_name, task = context.state["task"]
        head: TaskHead = context.state["head"]
        train = list(task.splits["train"])
        limit = context.settings.data.max_train_examples
        if limit is not None and limit < len(train):
            train = random.Random(context.options.selection_seed).sample(train, limit)
        max_length = context.loop.max_length
        encoded = encode_examples(task.kind, train, context.tokenizer, task.labels, max_length)
        if labelling(task.kind) == "span":  # answers cut off by truncation teach nothing
            encoded = [item for item in encoded if item.targets["end_positions"] > 0]
        features = [item.feature() for item in encoded]
        draw = random.Random(context.options.selection_seed)  # the split is ordered by page, so by class
        refit = context.options.refit_examples if labelling(task.kind) == "one" else 0
        drawn = len(features) if refit is None else max(CALIBRATION_EXAMPLES, refit)
        context.state["calibration_features"] = draw.sample(features, min(drawn, len(features)))
        eval_features = None
        if context.loop.eval_every and task.splits.get("validation"):
            validation = list(task.splits["validation"])[: context.loop.eval_examples]
            eval_features = [item.feature() for item in
                             encode_examples(task.kind, validation, context.tokenizer, task.labels, max_length)]

        class_weights = None
        if context.options.balance_classes and labelling(task.kind) != "span":
            targets = [item.targets["labels"] for item in encoded]
            label_ids = [label for target in targets for label in (target if isinstance(target, list) else [target])]
            class_weights = balanced_class_weights(label_ids, len(task.labels))
        context.state["class_weights"] = class_weights

        def loss_fn(model: Any, batch: Any) -> tuple[Any, int]:
            hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
            loss = head.training_loss(hidden, batch["attention_mask"], batch, class_weights)
            if labelling(task.kind) == "per_token":
                return loss, max(int((batch["labels"] != -100).sum()), 1)
            return loss, int(batch["input_ids"].shape[0])

        parameters = dict(context.trained_parameters())
        parameters.update({HEAD_PREFIX + name: parameter for name, parameter in head.named_parameters()})
        head.train()
        lower = f" on frozen {context.options.lang_adapter}" if context.options.lang_adapter else " on the base model"
        return TrainingJob(model=context.handle.model, parameters=parameters, train_features=features,
                           collate=TaskCollator(context.tokenizer.pad_token_id), loss_fn=loss_fn,
                           eval_features=eval_features, name=f"{self.name}:{task_name}",
                           freezing=f"task adapter {context.handle.name!r} + {task.kind} head{lower}; "
                                    "everything else frozen" + context.state.get("reads", ""))

    def scores_base(self, context: RecipeContext) -> bool:
        """Return whether the base model is scored: only held-out text (``score_text``); the task needs a head."""
        return bool(context.options.score_text and context.data.text.get("test"))

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Return, once a head is trained, the task scores on ``eval_split`` with the majority-class
        figures beside them (and held-out bits/char with ``score_text``)."""
        figures: dict[str, Any] = {}
        if context.options.score_text and context.data.text.get("test"):
            figures = score_held_out(context, model)
        if "task" not in context.state or context.handle is None:
            return figures  # the base model has no trained head: no task figures
        task_name, task = context.state["task"]
        show = context.loop.progress and context.process.is_main
        calibration = context.state.pop("calibration_features", None)
        if calibration:  # once, right after training
            head = context.state["head"]
            rows = calibrate_head(model, head, calibration, context.tokenizer.pad_token_id,
                                  progress="features of training examples" if show else None)
            if rows is not None and labelling(task.kind) == "one" and context.options.refit_examples != 0:
                refit_head(head, rows, [feature["labels"] for feature in calibration],
                           context.state.get("class_weights"), context.options.refit_steps,
                           progress="refitting the head" if show else None)
        examples = evaluation_examples(task, context.options)
        scores = evaluate_task(model, context.state["head"], context.tokenizer, task, examples,
                               max_length=context.loop.max_length,
                               progress=f"scoring {context.options.eval_split} examples" if show else None)
        figures.update({f"task_{key}": value for key, value in scores.items()})
        figures.update(majority_figures(task, examples))
        figures.update({"task": task_name, "task_split": context.options.eval_split})
        return figures

    def artifact_extras(self, context: RecipeContext) -> dict[str, Any]:
        """Return the head's tensors (``lowres.head.*``) with the default extras, and write
        ``task_head.json`` (task, kind, labels, head settings) next to them."""
        task_name, task = context.state["task"]
        head: TaskHead = context.state["head"]
        description = {"task": task_name, "kind": task.kind, "labels": list(task.labels),
                       "head": config_to_dict(head.config)}
        atomic_write_text(Path(context.run_dir) / TASK_HEAD_FILE, json.dumps(description, indent=2) + "\n")
        extras = super().artifact_extras(context)
        extras.update(head.head_state_dict())
        return extras

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the task's name (its data come from the language pack)."""
        return [f"{context.language}:{chosen_task(context)[0]}"]
