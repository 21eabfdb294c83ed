"""Quality tables over seeds, written to ``benchmarks/results/``; docs quote these files.

Usage::

    .venv/bin/python benchmarks/quality.py --table task --quick            # CPU budget, 3 seeds
    .venv/bin/python benchmarks/quality.py --table task                    # the recipe's defaults
    .venv/bin/python benchmarks/quality.py --table task --quick --rows seq_bn,lora --seeds 1

Table ``task``: Dzongkha ``help_module`` (8 classes), scored on the test split: majority class,
a character n-gram reference (scikit-learn), a head-only probe on frozen features, task
adapters (``seq_bn``, ``lora``) on the bare base, MAD-X (``seq_bn`` on a frozen ``dzo`` language
adapter) and full fine-tuning. Each table is one function in :data:`TABLES`; a row is a function
``(context, seed) -> figures``. Results go to ``results/<table>-<budget>.json`` (every seed's
figures, mean ± std, budget, machine, wall time) and ``.md``, rewritten after every run, so an
interrupted run keeps what finished; rerunning skips the (row, seed) pairs already in the JSON
unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Budget:
    """How much each run may train and score.

    Attributes:
        name: ``quick`` or ``default``.
        max_length: Tokens per example (None: the recipe's default).
        max_steps: Optimiser steps of batch ``batch_size`` (None: the recipe's default).
        batch_size: Examples per step.
        eval_examples: Test examples scored, drawn once with selection seed 0 (None: the whole split).
        language_steps: Steps of the ``dzo`` language adapter under the MAD-X row.
    """

    name: str
    max_length: int | None
    max_steps: int | None
    batch_size: int
    eval_examples: int | None
    language_steps: int


BUDGETS = {
    "quick": Budget("quick", max_length=64, max_steps=40, batch_size=16, eval_examples=400, language_steps=40),
    "default": Budget("default", max_length=None, max_steps=None, batch_size=16, eval_examples=None,
                      language_steps=200),
}


@dataclass
class TaskContext:
    """What the rows of the task table share: the task, the scored examples, the budget, a work folder."""

    budget: Budget
    work: Path
    task: Any
    test: list[Any]
    labels: list[str]
    reuse: bool = False


def _loop(budget: Budget) -> dict[str, Any]:
    from lowres_adapters.training.recipes.task import DECODER_DEFAULTS

    return {"max_length": budget.max_length or DECODER_DEFAULTS["max_length"],
            "max_steps": budget.max_steps or DECODER_DEFAULTS["max_steps"], "batch_size": budget.batch_size}


def _scores(context: TaskContext, predictions: list[str]) -> dict[str, float]:
    from lowres_adapters.evaluation.classification import classification_scores

    scores = classification_scores(predictions, [example.label for example in context.test], context.labels)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def _training_draw(context: TaskContext, seed: int) -> list[Any]:
    """Return as many training examples as a run of the budget sees, drawn with ``seed``."""
    loop = _loop(context.budget)
    train = list(context.task.splits["train"])
    return random.Random(seed).sample(train, min(len(train), loop["max_steps"] * loop["batch_size"]))


def majority_row(context: TaskContext, seed: int) -> dict[str, Any]:
    """Always the most frequent training label."""
    label = Counter(example.label for example in context.task.splits["train"]).most_common(1)[0][0]
    return {**_scores(context, [label] * len(context.test)), "trainable": 0}


def _ngram_scores(context: TaskContext, train: list[Any]) -> dict[str, Any]:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise SystemExit("the n-gram reference needs scikit-learn: pip install scikit-learn") from None
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform([example.text for example in train])
    model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)
    model.fit(features, [example.label for example in train])
    predictions = list(model.predict(vectorizer.transform([example.text for example in context.test])))
    return {**_scores(context, predictions), "trainable": int(model.coef_.size + model.intercept_.size),
            "train_examples": len(train)}


def ngram_row(context: TaskContext, seed: int) -> dict[str, Any]:
    """Character 1-3-gram TF-IDF + balanced logistic regression on the budget's number of training
    paragraphs (whole paragraphs, not truncated to ``max_length`` tokens)."""
    return _ngram_scores(context, _training_draw(context, seed))


def ngram_all_row(context: TaskContext, seed: int) -> dict[str, Any]:
    """The same n-gram reference on every training paragraph (the draw does not depend on the seed)."""
    return _ngram_scores(context, list(context.task.splits["train"]))


def _probe_features(context: TaskContext) -> dict[str, Any]:
    """Return ``{"train": (rows, labels), "test": (rows, labels)}``: mean-pooled hidden states of the
    frozen base at the layer the recipe's head reads by default (``DECODER_FEATURE_LAYER``), for every
    training example and the scored test examples, computed once and cached in the work folder."""
    import torch

    from lowres_adapters.models import DEFAULT_MODEL, load_base_model
    from lowres_adapters.training.heads import keep_layers, last_hidden_states
    from lowres_adapters.training.recipes.task import DECODER_FEATURE_LAYER
    from lowres_adapters.training.task_features import collate, encode_examples

    loop = _loop(context.budget)
    cache = context.work / f"probe-features-{loop['max_length']}-layer{DECODER_FEATURE_LAYER}-all.pt"
    if not cache.exists():
        model, tokenizer = load_base_model(DEFAULT_MODEL)
        keep_layers(model, DECODER_FEATURE_LAYER)
        model.eval()
        pooled = {}
        for split, examples in (("train", list(context.task.splits["train"])), ("test", context.test)):
            encoded = encode_examples("sequence_classification", examples, tokenizer, context.labels,
                                      loop["max_length"])
            states = []
            for start in range(0, len(encoded), 16):
                batch = collate(encoded[start: start + 16], tokenizer.pad_token_id)
                with torch.no_grad():
                    hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                states.append((hidden * mask).sum(1) / mask.sum(1))  # (batch, hidden): mean over real tokens
            pooled[split] = (torch.cat(states), torch.tensor([e.targets["labels"] for e in encoded]))
        torch.save(pooled, cache)
    return torch.load(cache)


def probe_row(context: TaskContext, seed: int) -> dict[str, Any]:
    """Head only on frozen features: the recipe's head (mean pooling, standardised, balanced loss)
    trained by SGD for the budget's steps on pooled features computed once; the seed sets the
    head's initialisation and batch order."""
    import torch

    from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights

    loop = _loop(context.budget)
    pooled = _probe_features(context)
    (train_x, train_y), (test_x, _) = pooled["train"], pooled["test"]
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=len(context.labels), hidden_size=train_x.shape[1]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)  # the recipe's lr when this row was measured
    weights = balanced_class_weights(train_y.tolist(), len(context.labels))
    order = torch.Generator().manual_seed(seed)
    one = torch.ones(loop["batch_size"], 1, dtype=torch.long)
    for _ in range(loop["max_steps"]):
        rows = torch.randint(len(train_y), (loop["batch_size"],), generator=order)
        loss = head.loss(head(train_x[rows].unsqueeze(1), one), {"labels": train_y[rows]}, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        predicted = head(test_x.unsqueeze(1), torch.ones(len(test_x), 1, dtype=torch.long)).argmax(-1)
    return {**_scores(context, [context.labels[index] for index in predicted.tolist()]),
            "trainable": sum(parameter.numel() for parameter in head.parameters())}


def probe_refit_row(context: TaskContext, seed: int) -> dict[str, Any]:
    """Head only on the same frozen features, fitted the way the recipe refits its head after
    training (``task_scoring.refit_head``: full batch, ``refit_steps`` steps, ``REFIT_HEAD_MEMBERS``
    members); the seed sets the head's initialisation."""
    import torch

    from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights
    from lowres_adapters.training.recipes.task import REFIT_HEAD_MEMBERS, TaskOptions
    from lowres_adapters.training.task_scoring import refit_head

    (train_x, train_y), (test_x, _) = _probe_features(context)["train"], _probe_features(context)["test"]
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=len(context.labels), hidden_size=train_x.shape[1],
                               members=REFIT_HEAD_MEMBERS))
    head.normalizer.set_statistics(train_x)
    weights = balanced_class_weights(train_y.tolist(), len(context.labels))
    refit_head(head, train_x, train_y.tolist(), weights, TaskOptions().refit_steps)
    with torch.no_grad():
        predicted = head(test_x.unsqueeze(1), torch.ones(len(test_x), 1, dtype=torch.long)).argmax(-1)
    return {**_scores(context, [context.labels[index] for index in predicted.tolist()]),
            "trainable": sum(parameter.numel() for parameter in head.parameters()), "train_examples": len(train_y)}


def language_adapter(context: TaskContext) -> Path:
    """Return the ``dzo`` language adapter (``seq_bn``, the ``language`` recipe), trained once."""
    from lowres_adapters.training.adapt import adapt

    folder = context.work / f"dzo-language-seq_bn-{context.budget.language_steps}"
    if not (folder / "metrics.json").exists():
        adapt("dzo", recipe="language", adapter="seq_bn", max_steps=context.budget.language_steps,
              max_length=_loop(context.budget)["max_length"], output=str(folder), progress=False, seed=0,
              echo=lambda line: None, overwrite=True)
    return folder


def recipe_row(adapter: str, *, lr: float | None = None, madx: bool = False) -> Callable[[TaskContext, int], dict]:
    """Return a row that runs ``lowres adapt dzo --recipe task --adapter ADAPTER`` with the budget."""

    def row(context: TaskContext, seed: int) -> dict[str, Any]:
        from lowres_adapters.training.adapt import adapt

        name = f"{'madx-' if madx else ''}{adapter}-seed{seed}"
        folder = context.work / name
        reused = context.reuse and (folder / "metrics.json").exists() and not (folder / "run_in_progress.json").exists()
        if reused:
            metrics = json.loads((folder / "metrics.json").read_text("utf-8"))
        else:
            options: dict[str, Any] = {"max_eval_examples": context.budget.eval_examples}
            if madx:
                options["lang_adapter"] = str(language_adapter(context))
            metrics = adapt("dzo", recipe="task", adapter=adapter, seed=seed, lr=lr, **_loop(context.budget),
                            recipe_options=options, output=str(folder), progress=False,
                            echo=lambda line: None, overwrite=True).metrics
        adapted, training = metrics["adapted"], metrics["training"]
        return {"accuracy": adapted["task_accuracy"], "macro_f1": adapted["task_macro_f1"],
                "trainable": training["trainable_parameters"], "total": training["total_parameters"],
                "train_seconds": round(training["seconds"], 1), "reused": reused}

    return row


TASK_ROWS: dict[str, tuple[str, Callable[[TaskContext, int], dict[str, Any]]]] = {
    "majority": ("majority class", majority_row),
    "ngram": ("character 1-3-gram logistic regression, same number of paragraphs (reference)", ngram_row),
    "ngram_all": ("character 1-3-gram logistic regression, all 11,960 paragraphs (reference)", ngram_all_row),
    "probe": ("head only on the frozen base, SGD for the budget's steps (probe)", probe_row),
    "probe_refit": ("head only on the frozen base, fitted full batch on every training example (the recipe's refit)",
                    probe_refit_row),
    "seq_bn": ("task adapter `seq_bn` on the bare base", recipe_row("seq_bn")),
    "lora": ("task adapter `lora` on the bare base", recipe_row("lora")),
    "madx_seq_bn": ("MAD-X: `seq_bn` task adapter on a frozen `dzo` `seq_bn` language adapter",
                    recipe_row("seq_bn", madx=True)),
    "full": ("full fine-tuning (`--adapter full`, lr 1e-4)", recipe_row("full", lr=1e-4)),
}


def task_context(budget: Budget, work: Path) -> TaskContext:
    """Load the dzo pack's ``help_module`` task and draw the scored test examples."""
    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.training.recipes.task import TaskOptions, evaluation_examples

    task = load_pack_data("dzo").tasks["help_module"]
    test = evaluation_examples(task, TaskOptions(max_eval_examples=budget.eval_examples))
    return TaskContext(budget=budget, work=work, task=task, test=test, labels=list(task.labels))


TABLES: dict[str, tuple[Callable[[Budget, Path], Any], dict[str, tuple[str, Callable]]]] = {
    "task": (task_context, TASK_ROWS),
}


def summarise(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return mean ± std (sample) of every numeric figure over the seeds that ran."""
    from lowres_adapters.evaluation.stats import summarize_runs

    return {name: stats.to_dict() for name, stats in summarize_runs(list(per_seed.values())).items()}


def record(path: Path, result: dict[str, Any], key: str, title: str, seed: int,
           figures: dict[str, Any]) -> dict[str, Any]:
    """Return ``result`` with one seed's figures added, merged with what another run of this script
    (e.g. a second queue of rows) wrote to ``path`` meanwhile."""
    if path.exists():
        written = json.loads(path.read_text("utf-8"))
        for other_key, other in written.get("rows", {}).items():
            mine = result["rows"].setdefault(other_key, {"title": other["title"], "per_seed": {}, "summary": {}})
            for other_seed, other_figures in other["per_seed"].items():
                mine["per_seed"].setdefault(other_seed, other_figures)
    entry = result["rows"].setdefault(key, {"title": title, "per_seed": {}, "summary": {}})
    entry["per_seed"][str(seed)] = figures
    for row in result["rows"].values():
        if row["per_seed"]:
            row["summary"] = summarise(row["per_seed"])
    return result


def write_markdown(result: dict[str, Any], path: Path) -> None:
    """Write the table (mean ± std over seeds) with its command, budget and machine."""
    from lowres_adapters.bench.report import machine_line

    commands = ", ".join(f"`{command}`" for command in result.get("commands", [result["command"]]))
    lines = [f"Commands (rows and seeds may come from several): {commands}", "",
             f"Budget: {json.dumps(result['budget'])}; test examples scored: {result['test_examples']}", "",
             "| setup | trainable | accuracy | macro-F1 | seeds | wall s / run |", "|---|---:|---:|---:|---:|---:|"]
    for key, row in result["rows"].items():
        summary = row["summary"]
        if not summary:
            continue

        def cell(name: str) -> str:
            figure = summary.get(name)
            return "–" if figure is None else f"{figure['mean']:.1f} ± {figure['std']:.1f}"

        trainable = summary.get("trainable", {}).get("mean")
        total = summary.get("total", {}).get("mean")
        share = f" ({100 * trainable / total:.2f}%)" if trainable and total else ""
        seconds = summary.get("wall_seconds", {}).get("mean")
        lines.append(f"| {row['title']} | {int(trainable or 0):,}{share} | {cell('accuracy')} | {cell('macro_f1')} | "
                     f"{len(row['per_seed'])} | {'–' if seconds is None else f'{seconds:.0f}'} |")
    lines += ["", f"- machine at start: {machine_line(result['machine'])}",
              f"- wall time so far: {result['wall_seconds'] / 60:.0f} min", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(arguments: list[str]) -> int:
    """Run the chosen table's rows for each seed (seed-major, so every row gets a first seed early)."""
    from lowres_adapters.bench.report import machine_info

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", choices=sorted(TABLES), required=True)
    parser.add_argument("--quick", action="store_true", help="the small CPU budget (see BUDGETS)")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--rows", help="comma-separated rows (default: all)")
    parser.add_argument("--work", default=os.environ.get("LOWRES_QUALITY_WORK", "runs/quality"),
                        help="folder for run folders and cached features")
    parser.add_argument("--force", action="store_true", help="rerun (row, seed) pairs already in the results")
    parser.add_argument("--reuse", action="store_true",
                        help="take a recipe row's figures from its finished run folder under --work when there is "
                             "one (e.g. the same `lowres adapt` run from the command line) instead of rerunning it")
    options = parser.parse_args(arguments)
    budget = BUDGETS["quick" if options.quick else "default"]
    build_context, rows = TABLES[options.table]
    chosen = options.rows.split(",") if options.rows else list(rows)
    unknown = sorted(set(chosen) - set(rows))
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(rows)}")
    seeds = [int(seed) for seed in options.seeds.split(",")]
    work = Path(options.work) / f"{options.table}-{budget.name}"
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{options.table}-{budget.name}.json"
    result = json.loads(path.read_text("utf-8")) if path.exists() else {"rows": {}, "wall_seconds": 0.0}
    result.update({"table": options.table, "budget": asdict(budget), "machine": machine_info(threads=1),
                   "command": "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in arguments)})
    command = result["command"]
    result["commands"] = [*[c for c in result.get("commands", []) if c != command], command]
    context = build_context(budget, work)
    context.reuse = options.reuse
    result["test_examples"] = len(context.test)
    started = time.perf_counter() - result["wall_seconds"]
    for seed in seeds:
        for key in chosen:
            title, function = rows[key]
            entry = result["rows"].setdefault(key, {"title": title, "per_seed": {}, "summary": {}})
            if str(seed) in entry["per_seed"] and not options.force:
                continue
            began = time.perf_counter()
            figures = function(context, seed)
            if not figures.pop("reused", False):  # a reused run folder's wall time is not known here
                figures["wall_seconds"] = round(time.perf_counter() - began, 1)
            result = record(path, result, key, title, seed, figures)
            result["wall_seconds"] = max(result["wall_seconds"], time.perf_counter() - started)
            path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            write_markdown(result, path.with_suffix(".md"))
            print(f"{key} seed {seed}: accuracy {figures['accuracy']:.1f}, macro-F1 {figures['macro_f1']:.1f} "
                  f"({figures.get('wall_seconds', 'reused run,')} s)", flush=True)
    print(path.with_suffix(".md").read_text("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
