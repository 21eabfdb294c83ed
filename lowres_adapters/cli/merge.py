"""``lowres merge``: fold a run's adapter into its base model and save a plain transformers folder."""

from __future__ import annotations

from pathlib import Path

import click

from lowres_adapters.merge import merge_run


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--model", "base_model", default=None, help="Base model id or folder to use instead of the recorded one.")
@click.option("--allow-pickle", is_flag=True, help="Allow a base model stored as pickled .bin files.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def merge(run_dir: Path, output: Path, base_model: str | None, allow_pickle: bool, overwrite: bool) -> None:
    """Merge a LoRA or (IA)^3 adapter (and new vocabulary rows) into the base model, saved to OUTPUT.

    OUTPUT loads with transformers alone: AutoModelForCausalLM.from_pretrained(OUTPUT).
    """
    written = merge_run(run_dir, output, model=base_model, allow_pickle=allow_pickle, overwrite=overwrite)
    click.echo(f"merged {run_dir} into {written} (AutoModelForCausalLM.from_pretrained({str(written)!r}))")
