"""``lowres data``: fetch language packs' real data into the cache, and count or validate data."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from lowres_adapters.data.packs import fetch_pack, load_pack_data
from lowres_adapters.errors import LowresError


class _EchoHandler(logging.Handler):
    """Print progress records of the data logger on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"  {record.getMessage()}", err=True)


@click.group()
def data() -> None:
    """Fetch language-pack data and show statistics of packs and files."""


@data.command()
@click.argument("codes", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Fetch again even when the data is cached and verified.")
@click.option("--quiet", is_flag=True, help="Print only the summary line of each pack.")
def fetch(codes: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Fetch the data of language packs CODES (e.g. `nya dzo bod`) into the cache."""
    logger = logging.getLogger("lowres_adapters.data")
    handler = _EchoHandler()
    if not quiet:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        for code in codes:
            result = fetch_pack(code, force=force)
            files = result.manifest.get("files", {})
            size = sum(entry["bytes"] for entry in files.values()) / 1e6
            verb = "already fetched (checksums verified)" if result.status == "cached" else "fetched"
            click.echo(f"{code}: {verb}: {len(files)} files, {size:.1f} MB in {result.seconds:.1f} s -> "
                       f"{result.directory}")
    finally:
        logger.removeHandler(handler)


@data.command()
@click.argument("code", required=False)
@click.option("--text", "text_file", type=click.Path(path_type=Path), help="Validate and count a text file.")
@click.option("--parallel", "parallel_file", type=click.Path(path_type=Path),
              help="Validate and count a parallel file (TSV/JSONL, or the source side of two Moses files).")
@click.option("--target-file", default="", help="Target side of a Moses-style pair (with --parallel).")
@click.option("--graph", "graph_file", type=click.Path(path_type=Path),
              help="Validate and count a knowledge-graph file (read by --graph-source).")
@click.option("--graph-source", default="",
              help="The registered edge source that reads --graph (see 'lowres list sources').")
@click.option("--lang", default="", help="ISO 639-3 code of --text.")
@click.option("--source-lang", default="", help="ISO 639-3 code of the source side of --parallel.")
@click.option("--target-lang", default="", help="ISO 639-3 code of the target side of --parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(code: str | None, text_file: Path | None, parallel_file: Path | None, target_file: str,
          graph_file: Path | None, graph_source: str, lang: str, source_lang: str, target_lang: str, as_json: bool) -> None:
    """Show counts of a fetched pack CODE, or validate a file given with --text/--parallel/--graph."""
    # lazy: data.stats imports numpy
    from lowres_adapters.data import stats as data_stats

    chosen = [name for name, value in (("CODE", code), ("--text", text_file), ("--parallel", parallel_file),
                                        ("--graph", graph_file)) if value]
    if len(chosen) != 1:
        raise LowresError("give exactly one of: a pack CODE, --text FILE, --parallel FILE, --graph FILE")
    if code:
        result = data_stats.pack_stats(code, load_pack_data(code))
    elif text_file:
        result = data_stats.text_file_stats(text_file, lang)
    elif parallel_file:
        result = data_stats.parallel_file_stats(parallel_file, source_lang, target_lang, target_file)
    else:
        if not graph_source:
            raise LowresError("--graph needs --graph-source NAME: the edge source that reads the file "
                              "(see 'lowres list sources')")
        result = data_stats.graph_file_stats(graph_file, graph_source)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    _print_plain(result)


def _print_plain(result: dict, indent: str = "") -> None:
    for key, value in result.items():
        if isinstance(value, dict):
            if not value:
                continue
            click.echo(f"{indent}{key}:")
            _print_plain(value, indent + "  ")
        elif value not in (None, ""):
            click.echo(f"{indent}{key}: {value}")
    sys.stdout.flush()
