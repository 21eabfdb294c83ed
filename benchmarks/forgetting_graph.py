"""Forgetting under continual pre-training with a replay mix, and graph adapters on real graph data.

Usage::

    # CPT on Chichewa with replay shares 0 and 0.2, 3 seeds; English held-out before and after
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forgetting_graph.py forgetting --shares 0,0.2 --seeds 0,1,2
    # a graph adapter on CLDR Chinese annotations with Chinese templates; Chinese free text before/after
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forgetting_graph.py graph --seeds 0

``forgetting``: every (share, seed) is one ``lowres adapt nya --recipe cpt`` run (the recipe's
default steps and learning rate, LoRA r=8 on q, v), replaying the English side of the pack's
training pairs. Its held-out Chichewa bits/char (first ``--eval-examples`` NT verses) come from the
run's metrics; this script then scores the base model and each run on two English held-out sets:
the KJV side of the nya pack's test pairs (New Testament verses) and the English side of the dzo
pack's eng-dzo LibreOffice help pairs (test split; texts of >= 20 characters, first N distinct).
Writes ``results/forgetting.{json,md}`` after every run.

``graph``: ``lowres adapt zho --recipe graph`` on ``cldr_annotations`` (locale ``zh``) verbalised with
the Chinese templates shipped in ``lowres-kg-cldr``, for every ``--shares`` value of
``recipe_options.text_share`` and seed. Evaluation free text = the Chinese side of the dzo pack's
zho-dzo **test** pairs (first ``--eval-examples``, a file for ``--eval-text``); the free text mixed
into training = the Chinese side of its **train** pairs minus any text identical to a test-split
text (a file for ``--text``; share 0 passes no ``--text``). Graph-text bits/char is the recipe's
``graph_bits_per_char`` on its 10% test split. Writes ``results/graph_mix.{json,md}`` after every
run, with the graph-only result of ``--before`` as the "before" row::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forgetting_graph.py graph --shares 0.5,0.25 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LOWRES = str(Path(sys.executable).with_name("lowres"))
MACHINE = "2-core AMD EPYC (no native bf16), shared with other jobs"
ENGLISH_SETS = ("kjv_nt", "libreoffice_help")


def machine() -> dict[str, Any]:
    """Return where and how the figures were measured."""
    import torch

    return {"machine": MACHINE, "platform": f"{platform.machine()} python {platform.python_version()}",
            "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "load_average": [round(value, 2) for value in os.getloadavg()]}


def english_sets(limit: int) -> dict[str, list[str]]:
    """Return the two English held-out sets (test splits only)."""
    from lowres_adapters.training.run_data import load_run_data
    from lowres_adapters.training.settings import DataSettings

    nya, _ = load_run_data("nya", DataSettings())
    kjv = [pair.source for pair in nya.pairs["test"] if pair.source_lang == "eng"][:limit]
    dzo, _ = load_run_data("dzo", DataSettings())
    seen: set[str] = set()
    help_texts = []
    for pair in dzo.pairs["test"]:
        if pair.source_lang == "eng" and len(pair.source) >= 20 and pair.source not in seen:
            seen.add(pair.source)
            help_texts.append(pair.source)
    return {"kjv_nt": kjv, "libreoffice_help": help_texts[:limit]}


def score_sets(model: Any, tokenizer: Any, sets: dict[str, list[str]]) -> dict[str, float]:
    """Return bits/char of ``model`` on each set."""
    from lowres_adapters.evaluation.language_modeling import score_texts

    return {name: score_texts(model, tokenizer, texts, batch_size=8, max_length=512).bits_per_char
            for name, texts in sets.items()}


def score_folder(folder: Path | None, model_id: str, sets: dict[str, list[str]]) -> dict[str, float]:
    """Load the base model (``folder`` None) or a run, score it on ``sets`` and free it."""
    from lowres_adapters.models import load_base_model
    from lowres_adapters.runs.snapshots import load_run

    if folder is None:
        model, tokenizer = load_base_model(model_id)
    else:
        loaded = load_run(folder)
        model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    figures = score_sets(model, tokenizer, sets)
    del model
    gc.collect()
    return figures


def run_command(command: list[str], log: Path) -> float:
    """Run one ``lowres adapt`` process (its output in ``log``); return its wall time in seconds."""
    started = time.time()
    with log.open("w", encoding="utf-8") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        tail = log.read_text("utf-8").strip().splitlines()[-1:]
        raise SystemExit(f"{shlex.join(command)} failed ({code}): {tail}")
    return time.time() - started


def summary_of(values: list[float]) -> dict[str, Any]:
    from lowres_adapters.evaluation.stats import mean_std

    return mean_std(values).to_dict()


def cell(summary: dict[str, Any], digits: int = 3) -> str:
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def write(name: str, result: dict[str, Any], markdown: Callable[[dict[str, Any]], str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (RESULTS / f"{name}.md").write_text(markdown(result), "utf-8")


# --- forgetting ------------------------------------------------------------------------------


def forgetting_summary(result: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {"base": {key: summary_of([value]) for key, value in result["base"].items()}}
    for share, seeds in sorted(result["runs"].items(), key=lambda item: float(item[0])):
        done = [run for run in seeds.values() if "figures" in run]
        if done:
            rows[share] = {key: summary_of([run["figures"][key] for run in done]) for key in done[0]["figures"]}
            rows[share]["train_seconds"] = summary_of([run["seconds"] for run in done])
    return rows


def header_lines(result: dict[str, Any], title: str, *runs: str) -> list[str]:
    """Return a result page's title, machine line, the lines describing its runs and the benchmark command."""
    machine = result["machine"]
    return [f"# {title}", "",
            f"Machine: {machine['machine']}; OMP_NUM_THREADS={machine['OMP_NUM_THREADS']}; "
            f"load average at the end {machine['load_average']}.",
            *runs, "Benchmark command" + ("s" if len(result.get("commands", [])) > 1 else "") + ": "
            + "; ".join(f"`{command}`" for command in result.get("commands", [result["command"]]))
            + f"; {result['seconds']:.0f} s in all.", ""]


def forgetting_markdown(result: dict[str, Any]) -> str:
    rows = result["summary"]
    lines = [*header_lines(result, "Forgetting under CPT (nya), with and without replay",
                           f"Each run: `{result['command_template']}`; scored on {result['eval_examples']} texts per set."),
             "| model | replay share | nya NT (bits/char) | English KJV NT | English LibreOffice help | seeds | "
             "wall s per run |", "|---|---:|---:|---:|---:|---:|---:|"]
    base = rows["base"]
    lines.append(f"| base | – | {cell(base['nya'])} | {cell(base['kjv_nt'])} | {cell(base['libreoffice_help'])} | – | – |")
    for share, row in rows.items():
        if share == "base":
            continue
        lines.append(f"| CPT 40 steps | {float(share):g} | {cell(row['nya'])} | {cell(row['kjv_nt'])} | "
                     f"{cell(row['libreoffice_help'])} | {row['nya']['n']} | {row['train_seconds']['mean']:.0f} |")
    lines += ["", "Change against the base (mean over seeds):", "",
              "| replay share | nya NT | English KJV NT | English LibreOffice help |", "|---:|---:|---:|---:|"]
    for share, row in rows.items():
        if share != "base":
            changes = [100 * (row[key]["mean"] / base[key]["mean"] - 1) for key in ("nya", *ENGLISH_SETS)]
            lines.append(f"| {float(share):g} | " + " | ".join(f"{change:+.1f}%" for change in changes) + " |")
    return "\n".join(lines) + "\n"


def forgetting(options: argparse.Namespace, arguments: list[str]) -> None:
    started = time.time()
    output = RESULTS / "forgetting.json"
    result: dict[str, Any] = json.loads(output.read_text("utf-8")) if output.exists() and options.resume else {}
    sets = english_sets(options.eval_examples)
    template = (f"lowres adapt nya --recipe cpt --seed SEED --eval-examples {options.eval_examples} "
                f"--set recipe_options.replay_share=SHARE -o RUN_DIR")
    result.update({"command": "benchmarks/forgetting_graph.py " + shlex.join(arguments), "command_template": template,
                   "eval_examples": options.eval_examples, "english_sets": {k: len(v) for k, v in sets.items()},
                   "model": options.model})
    result.setdefault("runs", {})
    if "base" not in result:
        print("scoring the base model on the English sets", flush=True)
        result["base"] = score_folder(None, options.model, sets)
    for seed in options.seeds:
        for share in options.shares:
            key = f"{share:g}"
            run = result["runs"].setdefault(key, {}).setdefault(str(seed), {})
            if "figures" in run:
                continue
            run_dir = Path(options.runs) / f"nya-cpt-replay{key}-s{seed}"
            command = [LOWRES, "adapt", "nya", "--recipe", "cpt", "--seed", str(seed), "--eval-examples",
                       str(options.eval_examples), "--set", f"recipe_options.replay_share={share}",
                       "--quiet", "-o", str(run_dir)] + options.extra
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            print(f"replay {key} seed {seed}: {shlex.join(command)}", flush=True)
            if not (run_dir / "metrics.json").exists():
                run["seconds"] = round(run_command(command, run_dir.parent / f"{run_dir.name}.log"), 1)
            metrics = json.loads((run_dir / "metrics.json").read_text("utf-8"))
            result["base"]["nya"] = metrics["base"]["bits_per_char"]
            figures = {"nya": metrics["adapted"]["bits_per_char"], **score_folder(run_dir, options.model, sets)}
            run.update({"command": shlex.join(command[1:]), "figures": figures,
                        "train_seconds": metrics.get("training", {}).get("seconds"),
                        "seconds": run.get("seconds", 0.0)})
            result["seconds"] = result.get("seconds", 0.0) + (time.time() - started)
            started = time.time()
            result["machine"] = machine()
            result["summary"] = forgetting_summary(result)
            write("forgetting", result, forgetting_markdown)
            print(json.dumps(figures), flush=True)


# --- graph -----------------------------------------------------------------------------------


def share_key(share: float) -> str:
    return f"{share:g}"


def graph_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Return base, per-share adapted figures (mean ± std over seeds) and the % changes."""
    shares: dict[str, Any] = {}
    base: dict[str, Any] = {}
    for key, seeds in sorted(result["runs"].items(), key=lambda item: float(item[0])):
        done = list(seeds.values())
        if not done:
            continue
        base = base or {"graph": summary_of([done[0]["base"]["graph_bits_per_char"]]),
                        "free": summary_of([done[0]["base"]["bits_per_char"]])}
        row = {"graph": summary_of([run["adapted"]["graph_bits_per_char"] for run in done]),
               "free": summary_of([run["adapted"]["bits_per_char"] for run in done]),
               "seconds": summary_of([run["seconds"] for run in done if run["seconds"]] or [0.0]),
               "mixed_share": summary_of([run["adapted"].get("graph_free_text", {}).get("share", 0.0) for run in done])}
        row["change"] = {name: 100 * (row[name]["mean"] / base[name]["mean"] - 1) for name in ("graph", "free")}
        row["free_change_per_seed"] = [100 * (run["adapted"]["bits_per_char"] / run["base"]["bits_per_char"] - 1)
                                       for run in done]
        probed = [run["probe"]["udhr_zho"] for run in done if "probe" in run]
        if probed and result.get("probe_base"):
            row["probe"] = summary_of(probed)
            row["probe"]["change"] = 100 * (row["probe"]["mean"] / result["probe_base"]["udhr_zho"] - 1)
        shares[key] = row
    return {"base": base, "shares": shares}


def graph_markdown(result: dict[str, Any]) -> str:
    rows = result["summary"]
    train = result.get("train_text")
    lines = [*header_lines(result, f"Graph adapter: {result['source']} ({result['locales']}) -> {result['language']}, "
                                   "free text mixed in",
                           f"Each run: `{result['command_template']}` (text share 0: no `--text`).",
                           f"Graph sentences: {result.get('graph_sentences', '?')}; evaluation free text: "
                           f"{result['free_text']}.",
                           *([f"Free text mixed in: {train['description']}."] if train else [])),
             "| text share | graph-text bits/char (held-out 10%) | change | free-text bits/char | change | "
             "share of training chars mixed | seeds | wall s per run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = rows["base"]
    if base:
        lines.append(f"| base model | {cell(base['graph'])} | – | {cell(base['free'])} | – | – | – | – |")
    before = result.get("before")
    if before:
        lines.append(f"| 0 (graph only, before; {before['file']}) | {cell(before['adapted']['graph'])} | "
                     f"{before['change']['graph']:+.1f}% | {cell(before['adapted']['free'])} | "
                     f"{before['change']['free']:+.1f}% | 0 | {before['adapted']['free']['n']} | "
                     f"{before['adapted']['seconds']['mean']:.0f} |")
    for key, row in rows["shares"].items():
        lines.append(f"| {key} | {cell(row['graph'])} | {row['change']['graph']:+.1f}% | {cell(row['free'])} | "
                     f"{row['change']['free']:+.1f}% | {row['mixed_share']['mean']:.3f} | {row['free']['n']} | "
                     f"{row['seconds']['mean']:.0f} |")
    probed = {key: row["probe"] for key, row in rows["shares"].items() if "probe" in row}
    if probed:
        lines += ["", f"Out-of-domain probe, never trained on: {result['probe_texts']}; bits/char (`score_texts`, "
                  "batch 8, 512 tokens).", "", "| text share | Chinese UDHR bits/char | change | seeds |",
                  "|---|---:|---:|---:|", f"| base model | {result['probe_base']['udhr_zho']:.3f} | – | – |"]
        lines += [f"| {key} | {cell(row)} | {row['change']:+.1f}% | {row['n']} |" for key, row in probed.items()]
    lines += ["", "Goal: free text no worse than +2% against the base model.", "",
              "| text share | seed | graph text after | free text after | free-text change | final training loss | "
              "training examples | wall s |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, seeds in sorted(result["runs"].items(), key=lambda item: float(item[0])):
        for seed, run in sorted(seeds.items(), key=lambda item: int(item[0])):
            change = 100 * (run["adapted"]["bits_per_char"] / run["base"]["bits_per_char"] - 1)
            lines.append(f"| {key} | {seed} | {run['adapted']['graph_bits_per_char']:.3f} | "
                         f"{run['adapted']['bits_per_char']:.3f} | {change:+.1f}% | "
                         f"{run.get('final_loss', float('nan')):.2f} | {run.get('train_examples', '?')} | "
                         f"{run['seconds'] or float('nan'):.0f} |")
    return "\n".join(lines) + "\n"


def free_text_files(runs: Path, limit: int) -> tuple[Path, Path, dict[str, Any]]:
    """Write the evaluation texts (Chinese side of the dzo pack's zho-dzo **test** pairs, first ``limit``)
    and the training free text (the Chinese side of its **train** pairs, minus any text identical to a
    test-split text); return both files and a description of the training file."""
    from lowres_adapters.data.files import normalize_text
    from lowres_adapters.training.run_data import load_run_data
    from lowres_adapters.training.settings import DataSettings

    dzo, _ = load_run_data("dzo", DataSettings())
    test_side = [pair.source for pair in dzo.pairs["test"] if pair.source_lang == "zho"]
    free = test_side[:limit]
    eval_file = runs / "zho-libreoffice-help-test.txt"
    eval_file.write_text("".join(text.replace("\n", " ") + "\n" for text in free), "utf-8")
    # identical after the text reader's normalisation (NFC, whitespace collapsed) counts as identical
    held_out = {normalize_text(text) for text in test_side}
    train_side = [pair.source for pair in dzo.pairs["train"] if pair.source_lang == "zho"]
    kept = [text for text in dict.fromkeys(train_side) if normalize_text(text) not in held_out]  # distinct, in order
    train_file = runs / "zho-libreoffice-help-train.txt"
    train_file.write_text("".join(text.replace("\n", " ") + "\n" for text in kept), "utf-8")
    dropped = len(set(train_side)) - len(kept)
    description = (f"the Chinese side of the dzo pack's zho-dzo **train** pairs (LibreOffice help), {len(kept):,} "
                   f"distinct texts ({sum(map(len, kept)):,} characters) in {train_file.name}, passed with `--text`; "
                   f"{dropped} dropped as identical to a text of the test split (which holds the {limit} evaluation "
                   "texts); the recipe takes its share evenly across the file")
    return eval_file, train_file, {"file": train_file.name, "texts": len(kept), "chars": sum(map(len, kept)),
                                   "dropped_identical_to_test": dropped, "description": description}


def udhr_chinese() -> list[str]:
    """Return the out-of-domain Chinese probe: the Chinese side of the bod pack's UDHR test pairs."""
    from lowres_adapters.training.run_data import load_run_data
    from lowres_adapters.training.settings import DataSettings

    bod, _ = load_run_data("bod", DataSettings())
    return [pair.source for pair in bod.pairs["test"] if pair.source_lang in ("cmn", "zho")]


def graph(options: argparse.Namespace, arguments: list[str]) -> None:
    started = time.time()
    runs = Path(options.runs)
    runs.mkdir(parents=True, exist_ok=True)
    eval_file, train_file, train_text = free_text_files(runs, options.eval_examples)
    source_config = f"{{locales={json.dumps(options.locales.split(','))}}}"
    template = (f"lowres adapt zho --recipe graph --eval-text {eval_file.name} --text {train_file.name} "
                f"--set recipe_options.text_share=SHARE --set recipe_options.source={options.source} "
                f"--set 'recipe_options.source_config={source_config}' "
                f"--set recipe_options.templates={options.templates} --seed SEED -o RUN_DIR")
    output = RESULTS / f"{options.name}.json"
    earlier = json.loads(output.read_text("utf-8")) if output.exists() else {}
    result: dict[str, Any] = {"command": "benchmarks/forgetting_graph.py " + shlex.join(arguments),
                              "command_template": template, "language": "zho", "source": options.source,
                              "locales": options.locales, "templates": options.templates,
                              "free_text": f"{options.eval_examples} Chinese texts of the dzo pack's zho-dzo test "
                                           "pairs (LibreOffice help)", "train_text": train_text,
                              "commands": (earlier.get("commands", []) if options.resume else [])
                              + ["benchmarks/forgetting_graph.py " + shlex.join(arguments)],
                              "runs": earlier.get("runs", {}) if options.resume else {},
                              "seconds": earlier.get("seconds", 0.0) if options.resume else 0.0}
    if options.before and Path(options.before).exists():
        before = json.loads(Path(options.before).read_text("utf-8"))
        result["before"] = {"file": Path(options.before).name, "command": before["command"], **before["summary"]}
    probe = {"udhr_zho": udhr_chinese()} if options.probe else {}
    if probe:
        result["probe_texts"] = f"{len(probe['udhr_zho'])} Chinese UDHR articles (the bod pack's test pairs)"
        if "probe_base" not in result:
            result["probe_base"] = score_folder(None, options.model, probe)
    for seed in options.seeds:
        for share in options.shares:
            key = share_key(share)
            run_dir = runs / f"zho-graph-{options.source}-mix{key}-s{seed}"
            if options.no_train and not (run_dir / "metrics.json").exists():
                continue
            mix = ["--text", str(train_file)] if share > 0 else []
            command = [LOWRES, "adapt", "zho", "--recipe", "graph", "--eval-text", str(eval_file), *mix,
                       "--set", f"recipe_options.text_share={share}",
                       "--set", f"recipe_options.source={options.source}",
                       "--set", f"recipe_options.source_config={source_config}",
                       "--set", f"recipe_options.templates={options.templates}", "--seed", str(seed),
                       "--quiet", "-o", str(run_dir)] + options.extra
            print(f"share {key} seed {seed}: {shlex.join(command)}", flush=True)
            seconds = result["runs"].get(key, {}).get(str(seed), {}).get("seconds")  # reused run keeps its time
            if not (run_dir / "metrics.json").exists():
                run_started = time.time()
                seconds = round(run_command(command, runs / f"{run_dir.name}.log"), 1)
                result["seconds"] += time.time() - run_started
            metrics = json.loads((run_dir / "metrics.json").read_text("utf-8"))
            log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text("utf-8").splitlines()]
            train_examples = next((entry.get("train_examples") for entry in log if "train_examples" in entry), None)
            earlier_run = result["runs"].get(key, {}).get(str(seed), {})
            if probe and "probe" not in earlier_run:
                earlier_run["probe"] = score_folder(run_dir, options.model, probe)
            result["runs"].setdefault(key, {})[str(seed)] = {
                **({"probe": earlier_run["probe"]} if "probe" in earlier_run else {}),
                "command": shlex.join(command[1:]), "seconds": seconds, "train_examples": train_examples,
                "final_loss": [entry for entry in log if entry["event"] == "train"][-1]["loss"],
                "base": metrics["base"], "adapted": metrics["adapted"], "training": metrics.get("training", {})}
            result["graph_sentences"] = metrics["adapted"].get("graph_sentences")
            result["summary"] = graph_summary(result)
            result["machine"] = machine()
            write(options.name, result, graph_markdown)
            print(json.dumps({"share": key, "seed": seed, "graph": metrics["adapted"]["graph_bits_per_char"],
                              "free": metrics["adapted"]["bits_per_char"],
                              "mix": metrics["adapted"].get("graph_free_text")}), flush=True)
    print(graph_markdown(result), flush=True)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    forget = sub.add_parser("forgetting", help="CPT on nya with replay shares; English held-out before/after")
    forget.add_argument("--shares", default="0,0.2", help="replay shares, comma-separated")
    forget.add_argument("--resume", action="store_true", help="keep the runs of an earlier results/forgetting.json")
    graph_parser = sub.add_parser("graph", help="graph adapter on CLDR annotations; free text before/after")
    graph_parser.add_argument("--source", default="cldr_annotations")
    graph_parser.add_argument("--locales", default="zh")
    graph_parser.add_argument("--templates", default="lowres_kg_cldr:templates/zho.json")
    graph_parser.add_argument("--name", default="graph_mix", help="result file name under results/")
    graph_parser.add_argument("--shares", default="0.5", help="recipe_options.text_share values, comma-separated "
                              "(0: graph sentences only, no --text)")
    graph_parser.add_argument("--before", default=str(RESULTS / "graph_lr3e-3.json"),
                              help="an earlier graph-only result shown as the 'before' row")
    graph_parser.add_argument("--resume", action="store_true", help="keep the runs of an earlier result file")
    graph_parser.add_argument("--probe", action="store_true",
                              help="also score the base and every run on the Chinese UDHR (out-of-domain free text)")
    graph_parser.add_argument("--no-train", action="store_true", help="only collect runs already finished")
    for each in (forget, graph_parser):
        each.add_argument("--seeds", default="0,1,2")
        each.add_argument("--eval-examples", type=int, default=100)
        each.add_argument("--runs", default=str(ROOT / "runs" / "forgetting_graph"))
        each.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
        each.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `lowres adapt` arguments")
    options = parser.parse_args(arguments)
    options.seeds = [int(seed) for seed in options.seeds.split(",")]
    options.shares = [float(share) for share in options.shares.split(",")]
    if options.what == "forgetting":
        forgetting(options, arguments)
    else:
        graph(options, arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
