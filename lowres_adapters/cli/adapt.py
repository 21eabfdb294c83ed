"""``lowres adapt LANG``: adapt the base model to a language and write the run folder."""

from __future__ import annotations

import json

import click

from lowres_adapters import adapt as run_adapt
from lowres_adapters.errors import LowresError
from lowres_adapters.training.settings import merge_settings, parse_assignment


def _parse_seeds(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise LowresError(f"--seeds {text!r}: expected comma-separated integers such as 1,2,3") from None
    if not seeds:
        raise LowresError("--seeds: give at least one seed, e.g. --seeds 1,2,3")
    return seeds


@click.command()
@click.argument("language")
@click.option("--adapter", help="Adapter type (see `lowres list adapters`); default: the recipe's (lora for language).")
@click.option("--recipe", help="Recipe: language, graph, cpt, sft, cpt_sft, prompt-align, task; default: the pack's.")
@click.option("--model", help="Base model id or folder; default: the pack's (SmolLM2-135M-Instruct).")
@click.option("--output", "-o", help="Run folder; default runs/LANG-RECIPE-ADAPTER.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Settings file (.toml, .yaml).")
@click.option("--max-steps", type=int, help="Optimiser steps.")
@click.option("--epochs", type=float, help="Passes over the data (when --max-steps is not given).")
@click.option("--batch-size", type=int, help="Examples per optimiser step (global).")
@click.option("--grad-accum-steps", type=int, help="Micro-batches accumulated per step in each process.")
@click.option("--max-length", type=int, help="Tokens per example.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--eval-every", type=int, help="Validation loss every N steps (0: at the end only).")
@click.option("--save-every", type=int, help="Resumable checkpoint every N steps too (default: every 5 minutes; 0: none).")
@click.option("--early-stopping-patience", type=int, help="Stop after N evaluations without improvement.")
@click.option("--seed", type=int, help="Seed of adapter initialisation, data order, masks.")
@click.option("--seeds", help="Run once per seed (e.g. 1,2,3) and report mean ± std.")
@click.option("--resume", is_flag=True, default=None,
              help="Continue from the latest checkpoint in --output (the default when it holds an unfinished run with the same settings).")
@click.option("--overwrite", is_flag=True, default=None, help="Replace a finished run in --output (refused otherwise).")
@click.option("--text", type=click.Path(dir_okay=False),
              help="Training text file (one example per line), or a `datasets` dataset: hf:PATH_OR_NAME[:SPLIT[:COLUMN]] "
                   "(a save_to_disk folder, a .jsonl/.txt/.csv/.parquet file, or a name in the local datasets cache).")
@click.option("--eval-text", type=click.Path(dir_okay=False), help="Held-out text file (bits per character).")
@click.option("--pairs", type=click.Path(dir_okay=False), help="Training pairs (TSV source<TAB>target).")
@click.option("--eval-pairs", type=click.Path(dir_okay=False), help="Held-out pairs.")
@click.option("--source-lang", help="ISO 639-3 code of the pairs' source column (default eng).")
@click.option("--eval-examples", type=int, help="Held-out texts scored before/after (default 300).")
@click.option("--max-train-examples", "--max-examples", "max_train_examples", type=int, help="Use only the first N training examples.")
@click.option("--lang-adapter", type=click.Path(file_okay=False),
              help="task recipe: run folder of the frozen language adapter to stack the task adapter on.")
@click.option("--extend-vocab", type=int, help="Add up to N new tokens trained on the training text.")
@click.option("--train-also", multiple=True, help="Also train base parameters matching this glob (repeatable).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Any setting, e.g. loop.warmup_ratio=0.1, adapter_config.r=16, recipe_options.mix_share=0.2.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]),
              help="Where to compute; auto (default) takes CUDA, then MPS, then the CPU (docs/gpus.md).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="Compute precision; auto (default): bf16 on GPUs with it, else fp16; CPU: bf16 where native.")
@click.option("--gradient-checkpointing", is_flag=True, default=None,
              help="Recompute activations in the backward pass (less memory, slower).")
@click.option("--publish", help="Publish the run folder to this Hub repo (OWNER/NAME) when done.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout at the end.")
def adapt(language: str, config_file: str | None, seeds: str | None, assignments: tuple[str, ...],
          train_also: tuple[str, ...], quiet: bool, as_json: bool, lang_adapter: str | None,
          **options: object) -> None:
    """Adapt a model to LANGUAGE (ISO 639-3) and write the run folder.

    Uses the language pack's data and default recipe (run `lowres data fetch LANGUAGE` first), or
    your own files for any language: --text train.txt --eval-text heldout.txt.
    """
    overrides = {key: value for key, value in options.items() if value is not None}
    if train_also:
        overrides["train_also"] = tuple(train_also)
    if quiet:
        overrides["progress"] = False
    extra: dict = {}
    hardware = {key: overrides.pop(key) for key in ("device", "precision", "gradient_checkpointing")
                if key in overrides}
    if hardware.get("device", "auto") != "auto":
        # lazy: devices imports torch; refuse a missing device before any data or model loads
        from lowres_adapters.devices import choose_device

        choose_device(str(hardware["device"]))
    if hardware:
        extra = merge_settings(extra, {"loop": hardware})
    for assignment in assignments:
        extra = merge_settings(extra, parse_assignment(assignment))
    if lang_adapter:
        extra = merge_settings(extra, {"recipe_options": {"lang_adapter": lang_adapter}})
    for section in ("loop", "data", "adapter_config", "recipe_options"):
        if section in extra:
            overrides[section] = extra.pop(section)
    overrides.update(extra)

    seed_list = _parse_seeds(seeds)
    if seed_list:
        # lazy: training.stability imports torch
        from lowres_adapters.training.stability import adapt_seeds

        summary = adapt_seeds(language, seed_list, config=config_file, **overrides)
        if as_json:
            click.echo(json.dumps(summary.to_json(), indent=2))
        return

    result = run_adapt(language, config=config_file, **overrides)
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2, default=str))
