"""Cross-lingual transfer on the nya pack's ``bible_section`` task, and English -> Chichewa retrieval.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer.py                  # the whole table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer.py --lang-adapter RUN_DIR \\
        --prompt-run infonce-100=RUN_DIR --prompt-run lm-only-100=RUN_DIR

Every row is a linear head (multinomial logistic regression on standardised pooled hidden states)
trained on English verses, scored by macro-F1 on Chichewa test verses of the task's held-out
chapters; the backbone (SmolLM2-135M-Instruct by default) is frozen, so its pooled states are
computed once per encoder and cached (``--cache``). Rows:

- majority class, and the in-language reference (English test verses of the same chapters);
- zero-shot: the head on the base model's English vectors reads the base model's Chichewa vectors;
- mean shift: the same after subtracting each language's mean vector (means of unlabelled training verses);
- few-shot: 10 / 100 labelled Chichewa verses of the train chapters added to the English ones;
- MAD-X: the Chichewa vectors come from the base model + a Chichewa language adapter (``--lang-adapter``);
- alignment: a pooled adapter (:mod:`lowres_adapters.training.pooled_alignment`) trained with each
  registered loss on 100 / 1,000 parallel training pairs maps the Chichewa vectors; with
  ``--prompt-run`` also soft prompts trained by ``lowres adapt nya --recipe prompt-align``.

Held-out retrieval (English -> Chichewa top-1 among 200 pairs of the New Testament) is reported for
every alignment. Seeds vary the draw of English verses (of a larger pool), of few-shot verses and the
head's initialisation. Writes ``results/transfer.json`` and ``results/transfer.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

HERE = Path(__file__).resolve().parent
LOSSES = ("mse", "cosine", "kl", "infonce")
LOSS_CONFIGS: dict[str, dict[str, Any]] = {"infonce": {"temperature": 0.05}}


def parse_arguments(arguments: Sequence[str]) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--layer", type=int, default=15, help="hidden_states index pooled (0 = embeddings)")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--skip-first", type=int, default=1, help="real tokens left out of the pooling (BOS)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--english-pool-per-class", type=int, default=80)
    parser.add_argument("--english-per-class", type=int, default=50)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--few-shot-pool", type=int, default=150)
    parser.add_argument("--pairs", default="100,300,1000", help="numbers of alignment training pairs (nested)")
    parser.add_argument("--retrieval-pairs", type=int, default=200)
    parser.add_argument("--lang-adapter", default="", help="run folder of a nya language adapter (MAD-X row)")
    parser.add_argument("--prompt-run", action="append", default=[], help="NAME=RUN_DIR of a prompt-align run")
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "lowres-adapters" / "transfer-features"))
    parser.add_argument("--name", default="transfer")
    return parser.parse_args(arguments)


def stratified(examples: Sequence[Any], per_class: int, seed: int) -> list[Any]:
    """Return up to ``per_class`` examples of every label, drawn with ``seed``, in a fixed order."""
    by_label: dict[str, list[Any]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    chosen = []
    for label in sorted(by_label):
        items = by_label[label]
        chosen += random.Random(f"{seed}:{label}").sample(items, min(per_class, len(items)))
    return chosen


def draw_sets(options: argparse.Namespace) -> dict[str, list[Any]]:
    """Return the fixed draws (selection seed 0): English pool, Chichewa test, few-shot pool, pairs."""
    from lowres_adapters.data.packs import load_pack_data

    data = load_pack_data("nya")
    task = data.tasks["bible_section"]
    pairs_train = random.Random(0).sample(list(data.pairs["train"]), max(int(n) for n in options.pairs.split(",")))
    held_out = random.Random(0).sample(list(data.pairs["test"]), options.retrieval_pairs)
    return {
        "english_pool": stratified(task.splits["train"], options.english_pool_per_class, 0),
        "test_nya": stratified(task.splits["test"], options.test_per_class, 0),
        "test_eng": stratified(task.splits["test_eng"], options.test_per_class, 0),
        "few_shot_pool": random.Random(0).sample(list(task.splits["train_nya"]), options.few_shot_pool),
        "pairs_train": pairs_train,
        "pairs_held_out": held_out,
        "labels": list(task.labels),
    }


class FeatureStore:
    """Pooled vectors of text sets under named encoders, computed once and cached on disk."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.cache = Path(options.cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.encoders: dict[str, Any] = {}
        self.seconds: dict[str, float] = defaultdict(float)

    def _encoder(self, name: str) -> tuple[Any, Any]:
        if name not in self.encoders:
            from lowres_adapters.loading import load_folder
            from lowres_adapters.models import load_base_model

            if name == "base":
                model, tokenizer = load_base_model(self.options.model)
            else:
                loaded = load_folder(name)
                model, tokenizer = loaded.model, loaded.tokenizer
            model.eval()
            self.encoders = {name: (model, tokenizer)}  # one model in memory at a time
        return self.encoders[name]

    def vectors(self, encoder: str, set_name: str, texts: Sequence[str]) -> torch.Tensor:
        """Return ``(len(texts), hidden)`` pooled vectors of ``texts`` under ``encoder`` at ``--layer``
        (every layer is cached, so another ``--layer`` costs no forward pass)."""
        from lowres_adapters.evaluation.retrieval import pooled_features

        o = self.options
        digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
        key = f"{encoder}|{set_name}|{o.model}|{o.pooling}|{o.skip_first}|{o.max_length}|{digest}"
        path = self.cache / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:20] + ".pt")
        if path.exists():
            saved = torch.load(path)
            if saved["key"] == key:
                return saved["layers"][o.layer].float()
        model, tokenizer = self._encoder(encoder)
        start = time.time()
        layers = list(range(model.config.num_hidden_layers + 1))
        vectors = pooled_features(model, tokenizer, list(texts), layers=layers, pooling=o.pooling,
                                  skip_first=o.skip_first, max_length=o.max_length)
        self.seconds[encoder] += time.time() - start
        torch.save({"key": key, "layers": {layer: v.half() for layer, v in vectors.items()}}, path)
        print(f"  {encoder} {set_name}: {len(texts)} texts in {time.time() - start:.0f} s", flush=True)
        return vectors[o.layer].half().float()

    def logit_lens(self, texts: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor]:
        """Return ``vectors -> log-probabilities`` through the base model's final norm and LM head,
        over the tokens that occur in ``texts`` (a full 49k-token softmax per step is too slow here)."""
        model, tokenizer = self._encoder("base")
        rows = sorted({token for text in texts for token in tokenizer(text)["input_ids"]})
        norm = model.model.norm
        weight = model.get_output_embeddings().weight[rows].detach()  # (tokens, hidden)

        def log_probs_of(vectors: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(norm(vectors) @ weight.T, dim=-1)  # (batch, tokens)

        return log_probs_of

def train_head(features: torch.Tensor, labels: Sequence[int], classes: int, seed: int,
               epochs: int = 200, lr: float = 0.01, weight_decay: float = 1e-3) -> Callable[[torch.Tensor], list[int]]:
    """Fit a multinomial logistic regression on standardised features; return ``predict(features)``."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    linear = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.AdamW(linear.parameters(), lr=lr, weight_decay=weight_decay)
    x, y = (features - mean) / std, torch.tensor(labels)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(linear(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def predict(other: torch.Tensor) -> list[int]:
        with torch.no_grad():
            return linear((other - mean) / std).argmax(-1).tolist()

    return predict


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """Return mean, sample std (0 for one value) and the values."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": list(values)}


def run(options: argparse.Namespace) -> dict[str, Any]:
    """Compute every row; return the result document."""
    from lowres_adapters.evaluation.classification import classification_scores
    from lowres_adapters.evaluation.retrieval import top1_accuracy
    from lowres_adapters.training.pooled_alignment import train_pooled_adapter

    started = time.time()
    seeds = [int(seed) for seed in options.seeds.split(",")]
    sets = draw_sets(options)
    labels = sets["labels"]
    index = {label: position for position, label in enumerate(labels)}
    store = FeatureStore(options)
    texts = {name: [example.text for example in sets[name]]
             for name in ("english_pool", "test_nya", "test_eng", "few_shot_pool")}
    base = {name: store.vectors("base", name, items) for name, items in texts.items()}
    base["pairs_eng"] = store.vectors("base", "pairs_eng", [pair.source for pair in sets["pairs_train"]])
    base["pairs_nya"] = store.vectors("base", "pairs_nya", [pair.target for pair in sets["pairs_train"]])
    base["held_eng"] = store.vectors("base", "held_eng", [pair.source for pair in sets["pairs_held_out"]])
    base["held_nya"] = store.vectors("base", "held_nya", [pair.target for pair in sets["pairs_held_out"]])
    gold_nya = [example.label for example in sets["test_nya"]]
    gold_eng = [example.label for example in sets["test_eng"]]

    def english_draw(seed: int) -> tuple[torch.Tensor, list[int]]:
        """Return ``english_per_class`` verses of every label from the English pool, drawn with ``seed``."""
        per_label: dict[str, list[int]] = defaultdict(list)
        for i in random.Random(seed).sample(range(len(sets["english_pool"])), len(sets["english_pool"])):
            if len(per_label[sets["english_pool"][i].label]) < options.english_per_class:
                per_label[sets["english_pool"][i].label].append(i)
        chosen = sorted(i for items in per_label.values() for i in items)
        return base["english_pool"][chosen], [index[sets["english_pool"][i].label] for i in chosen]

    rows: list[dict[str, Any]] = []

    def add_row(name: str, group: str, scorer: Callable[[int], tuple[dict[str, float], dict[str, float]]]) -> None:
        per_seed = [scorer(seed) for seed in seeds]
        row = {"row": name, "group": group,
               "macro_f1": summarise([scores["macro_f1"] for scores, _ in per_seed]),
               "accuracy": summarise([scores["accuracy"] for scores, _ in per_seed])}
        extras = [extra for _, extra in per_seed if extra]
        for key in (extras[0] if extras else {}):
            row[key] = summarise([extra[key] for extra in extras])
        rows.append(row)
        retrieval = f", retrieval {row['retrieval_top1']['mean']:.3f}" if "retrieval_top1" in row else ""
        print(f"{name}: macro-F1 {row['macro_f1']['mean']:.1f} ± {row['macro_f1']['std']:.1f}{retrieval}", flush=True)

    def scored(predict: Callable[[torch.Tensor], list[int]], features: torch.Tensor, gold: list[str]) -> dict[str, float]:
        return classification_scores([labels[i] for i in predict(features)], gold, labels)

    def zero_shot(features: torch.Tensor, extra: Callable[[int], dict[str, float]] | None = None):
        def scorer(seed: int) -> tuple[dict[str, float], dict[str, float]]:
            x, y = english_draw(seed)
            return scored(train_head(x, y, len(labels), seed), features, gold_nya), (extra(seed) if extra else {})
        return scorer

    majority = max(labels, key=lambda label: sum(e.label == label for e in sets["english_pool"]))
    add_row(f"majority class ({majority})", "reference",
            lambda seed: (classification_scores([majority] * len(gold_nya), gold_nya, labels), {}))
    add_row("English test verses (in-language reference)", "reference",
            lambda seed: (scored(train_head(*english_draw(seed), len(labels), seed), base["test_eng"], gold_eng), {}))
    base_retrieval = top1_accuracy(base["held_eng"], base["held_nya"])
    add_row("zero-shot (head on English, base model)", "zero-shot",
            zero_shot(base["test_nya"], lambda seed: {"retrieval_top1": base_retrieval}))
    shift = base["pairs_eng"].mean(0) - base["pairs_nya"].mean(0)  # unlabelled training verses of each language
    add_row("zero-shot + mean shift (unlabelled verses)", "zero-shot",
            zero_shot(base["test_nya"] + shift,
                      lambda seed: {"retrieval_top1": top1_accuracy(base["held_eng"], base["held_nya"] + shift)}))

    for shots in (10, 100):
        def few_shot(seed: int, shots: int = shots) -> tuple[dict[str, float], dict[str, float]]:
            x, y = english_draw(seed)
            chosen = random.Random(seed).sample(range(len(sets["few_shot_pool"])), min(shots, len(sets["few_shot_pool"])))
            x = torch.cat([x, base["few_shot_pool"][chosen]])
            y = y + [index[sets["few_shot_pool"][i].label] for i in chosen]
            return scored(train_head(x, y, len(labels), seed), base["test_nya"], gold_nya), {}
        add_row(f"few-shot: English + {shots} Chichewa verses", "few-shot", few_shot)

    if options.lang_adapter:
        lang_test = store.vectors(options.lang_adapter, "test_nya", texts["test_nya"])
        lang_held = store.vectors(options.lang_adapter, "held_nya", [p.target for p in sets["pairs_held_out"]])
        add_row("MAD-X: head on English (base), Chichewa through the nya language adapter", "MAD-X",
                zero_shot(lang_test, lambda seed: {"retrieval_top1": top1_accuracy(base["held_eng"], lang_held)}))

    counts = [int(n) for n in options.pairs.split(",")]
    log_probs_of = store.logit_lens([text for pair in sets["pairs_train"][: max(counts)] for text in (pair.source, pair.target)])
    for loss in LOSSES:
        for count in counts:
            adapters: dict[int, Any] = {}

            def adapter_for(seed: int, loss: str = loss, count: int = count) -> Any:
                if seed not in adapters:
                    adapters[seed] = train_pooled_adapter(base["pairs_nya"][:count], base["pairs_eng"][:count], loss,
                                                          LOSS_CONFIGS.get(loss), seed=seed, log_probs_of=log_probs_of)
                return adapters[seed]

            def aligned(seed: int, loss: str = loss, count: int = count) -> tuple[dict[str, float], dict[str, float]]:
                adapter = adapter_for(seed)
                with torch.no_grad():
                    test, held = adapter(base["test_nya"]), adapter(base["held_nya"])
                x, y = english_draw(seed)
                return (scored(train_head(x, y, len(labels), seed), test, gold_nya),
                        {"retrieval_top1": top1_accuracy(base["held_eng"], held)})
            add_row(f"pooled adapter, {loss}, {count} pairs", "alignment", aligned)

    for spec in options.prompt_run:
        name, _, directory = spec.partition("=")
        prompt_test = store.vectors(directory, "test_nya", texts["test_nya"])
        prompt_held = store.vectors(directory, "held_nya", [p.target for p in sets["pairs_held_out"]])
        add_row(f"soft prompt: {name}", "prompt",
                zero_shot(prompt_test, lambda seed: {"retrieval_top1": top1_accuracy(base["held_eng"], prompt_held)}))

    return {"rows": rows, "seeds": seeds, "options": vars(options),
            "counts": {"english_train": options.english_per_class * len(labels), "test_nya": len(gold_nya),
                       "few_shot_pool": len(sets["few_shot_pool"]), "pairs_train": max(counts),
                       "retrieval_pairs": len(sets["pairs_held_out"])},
            "chance_retrieval_top1": 1 / len(sets["pairs_held_out"]),
            "encoding_seconds": dict(store.seconds), "wall_seconds": time.time() - started,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), python {platform.python_version()}"}


def markdown(result: dict[str, Any], command: str) -> str:
    """Return the result as a Markdown table with the command and the budget."""
    def cell(row: dict[str, Any], key: str, scale: float = 1.0, digits: int = 1) -> str:
        if key not in row:
            return ""
        value = row[key]
        return f"{value['mean'] * scale:.{digits}f} ± {value['std'] * scale:.{digits}f}"

    lines = [f"Command: `{command}`", "",
             "| row | macro-F1 (nya test) | accuracy | retrieval top-1 eng->nya |", "|---|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['row']} | {cell(row, 'macro_f1')} | {cell(row, 'accuracy')} | "
                     f"{cell(row, 'retrieval_top1', 100.0)} |")
    counts = result["counts"]
    lines += ["", f"Seeds {result['seeds']}; mean ± sample std. {counts['english_train']} English training verses "
              f"per seed, {counts['test_nya']} Chichewa test verses (stratified, held-out chapters), few-shot pool "
              f"{counts['few_shot_pool']}, up to {counts['pairs_train']} alignment pairs, retrieval among "
              f"{counts['retrieval_pairs']} held-out pairs (chance {100 * result['chance_retrieval_top1']:.1f}%, "
              "shown in percent).",
              f"Machine: {result['machine']}; encoding {json.dumps({k: round(v) for k, v in result['encoding_seconds'].items()})} s, "
              f"wall {result['wall_seconds']:.0f} s (cached vectors are not re-encoded)."]
    return "\n".join(lines) + "\n"


def main(arguments: list[str]) -> int:
    """Run the benchmark and write ``results/<name>.json`` and ``.md``."""
    options = parse_arguments(arguments)
    result = run(options)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    command = "python benchmarks/transfer.py " + " ".join(arguments)
    result["command"] = command
    (results / f"{options.name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (results / f"{options.name}.md").write_text(markdown(result, command), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
