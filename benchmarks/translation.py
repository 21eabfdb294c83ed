"""Translation stage by stage: base -> after CPT -> after SFT, on the held-out pairs of cpt_sft runs.

Usage::

    # train (one thread, in the background), one folder per configuration and seed
    OMP_NUM_THREADS=1 lowres adapt nya --recipe cpt_sft --seed 1 --eval-examples 100 \\
        --set recipe_options.prompt_format=chat --set recipe_options.directions=into -o runs/nya-chat-s1
    # then score every stage of every run under several decodings
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translation.py --name translation_nya \\
        --run chat=runs/nya-chat-s1 --run chat=runs/nya-chat-s2 --run plain=runs/nya-plain-s1 \\
        --decoding beam4:num_beams=4 --decoding greedy-nr3:num_beams=1,no_repeat_ngram_size=3

For each configuration (``--run LABEL=RUN_DIR``, repeated once per seed) and decoding, every
stage is scored on the run's held-out data: bits/char on the held-out texts; chrF, chrF++ and BLEU
(sacrebleu, signatures kept) on the first ``--pairs`` held-out pairs; the share of outputs in the
target language and the repeated-n-gram rate. The base model is asked in its chat template
(``auto``), each stage as ``lowres evaluate STAGE_DIR`` asks it: the CPT stage (no instruction
training) with the plain completion prompt, the SFT stage in the format it was trained in. Writes ``results/<name>.json`` (every
figure, per seed, five samples per stage, timings, machine load) and ``results/<name>.md``
(mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIGURES = ("chrf_pp", "chrf", "bleu", "bits_per_char", "target_language_share", "repeated_ngram_rate",
           "distinct_output_share")
STAGES = ("base", "cpt", "sft")


def parse_decoding(text: str) -> tuple[str, dict[str, Any]]:
    """Return ``(label, settings)`` from ``"label:key=value,key=value"``."""
    label, _, body = text.partition(":")
    settings: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        settings[key] = float(value) if key == "repetition_penalty" else int(value)
    return label, settings


def stage_dirs(run_dir: Path) -> dict[str, Path | None]:
    """Return the folder of each stage (None for the base model)."""
    return {"base": None, "cpt": run_dir / "stages" / "cpt", "sft": run_dir / "stages" / "sft"}


def score_run(run_dir: Path, decodings: dict[str, dict[str, Any]], pairs: int,
              base_cache: dict[str, Any], stages: tuple[str, ...] = STAGES,
              prompt_format: str | None = None) -> dict[str, Any]:
    """Score every stage of one run under every decoding; return figures, samples and seconds per stage.

    The base model's figures are taken from ``base_cache`` when an earlier run had the same base
    model and held-out data (it is asked in its own chat template whatever the run).
    """
    from lowres_adapters.artifact import read_metadata
    from lowres_adapters.runs.evaluate import RUN_CONFIG_FILE, evaluate_model, held_out_data, read_json
    from lowres_adapters.runs.snapshots import load_run
    from lowres_adapters.models import load_base_model

    metadata = read_metadata(run_dir / "stages" / "cpt")  # readable while the SFT stage still trains
    run_config = next(config for config in (read_json(folder / RUN_CONFIG_FILE) for folder in (
        run_dir, run_dir / "stages" / "sft", run_dir / "stages" / "cpt")) if config)
    held_out = held_out_data(metadata, run_config, max_examples=None, translation_examples=pairs)
    recipe_options = dict(run_config.get("recipe_options", {}))
    if prompt_format:
        recipe_options["prompt_format"] = prompt_format
    result: dict[str, Any] = {"run_dir": str(run_dir), "direction": held_out.direction,
                              "pairs": len(held_out.sources), "texts": len(held_out.texts), "stages": {}}
    base_key = json.dumps([metadata.base_model, held_out.sources, held_out.texts])
    for stage, folder in stage_dirs(run_dir).items():
        if stage not in stages:
            continue
        started = time.time()
        if folder is None and base_key in base_cache:
            result["stages"][stage] = base_cache[base_key]
            continue
        if folder is None:
            model, tokenizer = load_base_model(metadata.base_model, metadata.objective,
                                               revision=metadata.base_model_revision)
        else:
            loaded = load_run(folder)
            model, tokenizer = loaded.model, loaded.tokenizer
        # each stage is asked as `lowres evaluate STAGE_DIR` asks it: in its own run's prompt format (a CPT
        # stage has none: the plain completion prompt; the SFT stage: the one it was trained in)
        asked = dict(recipe_options if folder is None else read_json(folder / RUN_CONFIG_FILE).get("recipe_options", {}))
        if prompt_format:
            asked["prompt_format"] = prompt_format
        figures: dict[str, Any] = {}
        first_label = next(iter(decodings))
        for number, (label, settings) in enumerate(decodings.items()):
            options = {"score_text": number == 0, "batch_size": 8, "max_length": 512, "generation_batch_size": 16,
                       "generation": {"num_beams": 4, "max_new_tokens": 256, **settings},
                       "prompt": asked.get("prompt"),
                       "prompt_format": asked.get("prompt_format", "plain"),
                       "base_prompt": "auto", "progress": True}
            role = "base" if folder is None else "adapted"
            scored, extras = evaluate_model(model, tokenizer, held_out, objective=metadata.objective,
                                            script=metadata.script, options=options, label=role,
                                            say=lambda message: print(f"  {stage} {label}: {message}", flush=True))
            figures[label] = {**{key: value for key, value in figures.get(first_label, {}).items()
                                 if key in ("bits_per_char", "bits_per_byte", "perplexity")},
                              **scored, "prompt_format": extras.get("prompt_format"),
                              "samples": [{"source": s, "reference": r, "output": h} for s, r, h in
                                          zip(held_out.sources[:5], held_out.references[:5], extras["hypotheses"])]}
        result["stages"][stage] = {"figures": figures, "seconds": round(time.time() - started, 1)}
        if folder is None:
            base_cache[base_key] = result["stages"][stage]
        del model
        gc.collect()
    return result


def signatures(run_dir: Path) -> dict[str, str]:
    """Return the sacrebleu signatures of the scores (they name the metric settings, not the data): BLEU
    tokenises characters for a target script without spaces, as ``lowres evaluate`` does."""
    from lowres_adapters.artifact import read_metadata
    from lowres_adapters.evaluation.translation import score_translations
    from lowres_adapters.runs.evaluate import UNSPACED_SCRIPTS

    script = read_metadata(run_dir).script
    scores = score_translations(["a"], ["a"], bleu_tokenize="char" if script in UNSPACED_SCRIPTS else None)
    return {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature, "chrf_pp": scores.chrf_pp_signature}


def summarise(runs: dict[str, list[dict[str, Any]]], decodings: list[str]) -> dict[str, Any]:
    """Return mean ± std over seeds of every figure, by configuration, decoding and stage."""
    from lowres_adapters.evaluation.stats import mean_std

    summary: dict[str, Any] = {}
    for config, seeds in runs.items():
        for decoding in decodings:
            for stage in STAGES:
                if any(decoding not in seed["stages"].get(stage, {}).get("figures", {}) for seed in seeds):
                    continue
                values = {figure: [seed["stages"][stage]["figures"][decoding][figure] for seed in seeds]
                          for figure in FIGURES if figure in seeds[0]["stages"][stage]["figures"][decoding]}
                summary.setdefault(config, {}).setdefault(decoding, {})[stage] = {
                    figure: mean_std(list(vals)).to_dict() for figure, vals in values.items()}
    return summary


def markdown(summary: dict[str, Any], result: dict[str, Any]) -> str:
    """Return the Markdown table (mean ± std over seeds) and the command."""
    lines = [f"Command: `{result['command']}`", "",
             f"Held-out: {result['pairs']} {result['direction']} pairs, {result['texts']} texts; "
             f"load average before {result['load_before']}, after {result['load_after']}; "
             f"{result['seconds']:.0f} s in all.", "",
             "sacrebleu: " + "; ".join(f"{name} `{value}`" for name, value in result.get("signatures", {}).items()), "",
             "| config | decoding | stage | chrF++ | chrF | BLEU | bits/char | in target language | "
             "repeated 3-grams | distinct outputs | seeds |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for config, decodings in summary.items():
        for decoding, stages in decodings.items():
            for stage, figures in stages.items():
                def cell(name: str, scale: float = 1.0, digits: int = 2) -> str:
                    if name not in figures:
                        return "–"
                    return f"{figures[name]['mean'] * scale:.{digits}f} ± {figures[name]['std'] * scale:.{digits}f}"
                lines.append(f"| {config} | {decoding} | {stage} | {cell('chrf_pp')} | {cell('chrf')} | "
                             f"{cell('bleu')} | {cell('bits_per_char', digits=3)} | "
                             f"{cell('target_language_share', 100, 0)}% | {cell('repeated_ngram_rate', 100, 0)}% | "
                             f"{cell('distinct_output_share', 100, 0)}% | "
                             f"{figures['chrf_pp']['n'] if 'chrf_pp' in figures else '–'} |")
    return "\n".join(lines) + "\n"


def main(arguments: list[str]) -> int:
    """Score the runs given and write ``results/<name>.json`` and ``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=RUN_DIR (repeat per seed)")
    parser.add_argument("--decoding", action="append", help="LABEL:key=value,... (default beam4:num_beams=4)")
    parser.add_argument("--pairs", type=int, default=32, help="held-out pairs translated per stage")
    parser.add_argument("--name", default="translation", help="result file name under results/")
    parser.add_argument("--merge-from", action="append", default=[],
                        help="also keep stages from results/<NAME>.json (scored by another process)")
    parser.add_argument("--prompt-format", choices=("plain", "chat"),
                        help="ask CPT and SFT in this format (default: the run's recipe_options)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="stages to score now; the others are kept from an earlier result of the same name")
    options = parser.parse_args(arguments)
    decodings = dict(parse_decoding(text) for text in (options.decoding or ["beam4:num_beams=4"]))
    started, load_before = time.time(), os.getloadavg()
    stages = tuple(filter(None, options.stages.split(",")))
    output = HERE / "results" / f"{options.name}.json"
    earlier: dict[str, Any] = {}
    for path in [output, *(HERE / "results" / f"{name}.json" for name in options.merge_from)]:
        for seeds in (json.loads(path.read_text("utf-8"))["runs"].values() if path.exists() else []):
            for run in seeds:
                kept = earlier.setdefault(run["run_dir"], {"stages": {}})
                for stage, value in run["stages"].items():  # decodings scored by several processes add up
                    if value:
                        merged = kept["stages"].setdefault(stage, {"figures": {}, "seconds": 0.0})
                        merged["figures"].update(value["figures"])
                        merged["seconds"] += value["seconds"]
    runs: dict[str, list[dict[str, Any]]] = {}
    base_cache: dict[str, Any] = {}
    for item in options.run:
        label, _, folder = item.partition("=")
        print(f"{label}: {folder}", flush=True)
        scored = score_run(Path(folder), decodings, options.pairs, base_cache, stages, options.prompt_format)
        kept = earlier.get(str(Path(folder)), {}).get("stages", {})
        scored["stages"] = {stage: scored["stages"].get(stage) or kept.get(stage) for stage in STAGES
                            if scored["stages"].get(stage) or kept.get(stage)}
        runs.setdefault(label, []).append(scored)
    first = next(iter(runs.values()))[0]
    result = {"command": "benchmarks/translation.py " + " ".join(shlex.quote(a) for a in arguments),
              "threads": os.environ.get("OMP_NUM_THREADS", "default"), "direction": first["direction"],
              "pairs": first["pairs"], "texts": first["texts"], "decodings": decodings,
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": time.time() - started, "signatures": signatures(Path(first["run_dir"])), "runs": runs,
              "summary": summarise(runs, list(decodings))}
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{options.name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (results / f"{options.name}.md").write_text(markdown(result["summary"], result), "utf-8")
    print(markdown(result["summary"], result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
