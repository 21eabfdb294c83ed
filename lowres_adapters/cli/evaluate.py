"""``lowres evaluate RUN_DIR`` and ``lowres analyze BEFORE AFTER``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import click

from lowres_adapters.data.text import read_text_file
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.report import summary_rows, write_report


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _print_figures(results: Mapping[str, Any]) -> None:
    """Print base vs adapted figures as an aligned table."""
    rows = summary_rows(results)
    click.echo(f"{results['language']} · {results['adapter_type']} · held-out {results['eval_split']} "
               f"({results['eval_examples']} texts"
               + (f", {results['translation_examples']} pairs {results['translation_direction']})"
                  if results.get("translation_direction") else ")"))
    width = max(len(row[0]) for row in rows) if rows else 10
    click.echo(f"  {'metric':<{width}}  {'base':>10}  {'adapted':>10}  change")
    for metric, base, adapted, change in rows:
        click.echo(f"  {metric:<{width}}  {base:>10}  {adapted:>10}  {change}")
    for name, signature in results.get("signatures", {}).items():
        click.echo(f"  {name} signature: {signature}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on stdout (nothing else).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write report.md, report.html, evaluation.json and PNG plots into this folder.")
@click.option("--max-examples", type=click.IntRange(min=1),
              help="Held-out texts (and at most as many pairs) to use; default: as many as the run used.")
@click.option("--translation-examples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Held-out pairs translated per model.")
@click.option("--num-beams", type=click.IntRange(min=1),
              help="Beam size; 1 is greedy.  [default: the run's recipe_options, else 4]")
@click.option("--max-new-tokens", type=click.IntRange(min=1),
              help="Longest generated translation.  [default: the run's, else 256]")
@click.option("--no-repeat-ngram-size", type=click.IntRange(min=0),
              help="Never repeat an n-gram of this many tokens; 0 is off.  [default: the run's, else 0]")
@click.option("--repetition-penalty", type=click.FloatRange(min=0, min_open=True),
              help="Penalise tokens already generated (CTRL); 1.0 is off.  [default: the run's, else 1.0]")
@click.option("--base-prompt", type=click.Choice(["auto", "run", "plain", "chat"]), default="auto", show_default=True,
              help="How the base model is asked: auto uses its chat template when it has one; run asks as the "
                   "adapter was trained.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Texts per forward pass when scoring.")
@click.option("--generation-batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Prompts per generate call (each with --num-beams rows).")
@click.option("--no-layers", is_flag=True, help="Leave the layer-wise analysis out of the report.")
@click.option("--skip-base", is_flag=True, help="Take the base figures from metrics.json.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate(run_dir: str, as_json: bool, report_dir: str | None, max_examples: int | None,
             translation_examples: int, num_beams: int | None, max_new_tokens: int | None,
             no_repeat_ngram_size: int | None, repetition_penalty: float | None, base_prompt: str, batch_size: int,
             generation_batch_size: int, no_layers: bool, skip_base: bool, quiet: bool) -> None:
    """Evaluate RUN_DIR on its held-out data: base and adapted side by side.

    Language modelling always (bits per character, per byte, perplexity), translation with
    BLEU/chrF/chrF++ when the data has held-out pairs, with the share of outputs in the target
    language and their repeated-n-gram rate. The figures and decoding settings are also written
    into the run's metrics.json (under "evaluate").
    """
    # lazy: runs.evaluate imports torch
    from lowres_adapters.runs.evaluate import evaluate_run

    if not Path(run_dir).is_dir():
        raise LowresError(f"{run_dir}: no such run folder")
    results = evaluate_run(run_dir, json=as_json, report_dir=report_dir, max_examples=max_examples,
                           translation_examples=translation_examples, num_beams=num_beams,
                           max_new_tokens=max_new_tokens, no_repeat_ngram_size=no_repeat_ngram_size,
                           repetition_penalty=repetition_penalty, base_prompt=base_prompt, batch_size=batch_size,
                           generation_batch_size=generation_batch_size, layers=not no_layers,
                           skip_base=skip_base, progress=not quiet, echo=_echo_err)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
    else:
        _print_figures(results)


def _read_texts(path: str | None, limit: int) -> list[str]:
    if path is None:
        return []

    return [example.text for example in read_text_file(path, "und")][:limit]


def _print_analysis(result: Mapping[str, Any]) -> None:
    compared = (" (every weight trained)" if result.get("trains_base_weights") else
                "" if result.get("merged") is None else f" (adapter merged: {result['merged']})")
    click.echo(f"{result['before']} -> {result['after']}{compared}")
    click.echo(f"  {'type':<18} {'||dW||/||W||':>13} {'||dW||':>10}")
    for kind in result["ranking"]:
        group = result["by_kind"][kind]
        click.echo(f"  {kind:<18} {group['relative']:>13.3e} {group['delta_norm']:>10.4g}")
    click.echo("  most changed tensors:")
    for tensor in result["top_tensors"][:5]:
        click.echo(f"    {tensor['name']}  {tensor['relative']:.3e}")
    norms = {key: value for key, value in (result.get("adapter_norms") or {}).items()}
    if norms:
        click.echo("  adapter norm per layer: " + ", ".join(f"{key}: {value:.3g}" for key, value in norms.items()))
    if result.get("cka"):
        values = result["cka"]["per_layer"]
        click.echo(f"  linear CKA per layer ({result['cka']['level']} level, {result['cka']['texts']} texts): "
                   + ", ".join(f"{value:.3f}" for value in values))


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path())
@click.option("--base", "against_base", is_flag=True,
              help="Compare the one folder given with its base model (not allowed for a second stage).")
@click.option("--text", "text_file", type=click.Path(dir_okay=False),
              help="Held-out text file for per-layer CKA (one text per line).")
@click.option("--cka-texts", type=click.IntRange(min=2), default=64, show_default=True,
              help="Texts used for CKA.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write heatmaps, report.md/html and evaluation.json into this folder.")
def analyze(checkpoints: tuple[str, ...], against_base: bool, text_file: str | None, cka_texts: int,
            as_json: bool, report_dir: str | None) -> None:
    """Show which weights moved between two checkpoints: BEFORE_DIR AFTER_DIR, or --base AFTER_DIR.

    Per type (embedding/output, attention, MLP, norm) and layer: ||dW||_F and ||dW||_F/||W||_F;
    adapter weight norms per layer; linear CKA per layer with --text. Compare consecutive stages
    (base -> stages/cpt, stages/cpt -> stages/sft), never base -> sft.
    """
    # lazy: runs.analysis imports torch
    from lowres_adapters.runs.analysis import BASE, analyze as run_analysis

    if against_base:
        if len(checkpoints) != 1:
            raise LowresError("with --base give exactly one folder: lowres analyze --base AFTER_DIR")
        before, after = BASE, checkpoints[0]
    elif len(checkpoints) == 2:
        before, after = checkpoints
    else:
        raise LowresError("give BEFORE_DIR AFTER_DIR, or --base AFTER_DIR")
    if before != BASE and not os.path.exists(before) and "/" not in before:
        raise LowresError(f"{before}: no such folder")
    result = run_analysis(before, after, texts=_read_texts(text_file, cka_texts))
    if report_dir is not None:
        title = f"{Path(str(before)).name} -> {Path(after).name}"
        results = {"run_dir": after, "language": "", "adapter_type": "", "base": {}, "adapted": {}}
        write_report(Path(report_dir), Path(after), results, {title: result})
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        _print_analysis(result)
