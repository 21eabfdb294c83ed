"""``lowres export``: a merged adapted model as one GGUF file for llama.cpp-style runtimes."""

from __future__ import annotations

from pathlib import Path

import click

from lowres_adapters.gguf_export import export_run


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(["gguf"]), default="gguf", show_default=True,
              help="File format.")
@click.option("--dtype", type=click.Choice(["f16", "f32"]), default="f16", show_default=True,
              help="Precision of the weight matrices (norms stay f32).")
@click.option("--model", "base_model", default=None, help="Base model id or folder to use instead of the recorded one.")
@click.option("--allow-pickle", is_flag=True, help="Allow a base model stored as pickled .bin files.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def export(run_dir: Path, output: Path, file_format: str, dtype: str, base_model: str | None, allow_pickle: bool,
           overwrite: bool) -> None:
    """Merge a run's adapter into its base model and write it as a GGUF file (llama architecture)."""
    written = export_run(run_dir, output, dtype=dtype, model=base_model, allow_pickle=allow_pickle,
                         overwrite=overwrite)
    click.echo(f"wrote {written} ({file_format}, {dtype}, {written.stat().st_size / 1e6:.1f} MB)")
