"""``lowres new KIND NAME``: write a plugin package skeleton whose own tests pass out of the box."""

from __future__ import annotations

from pathlib import Path

import click

from lowres_adapters.data.languages import language_name as iso_language_name
from lowres_adapters.errors import LowresError
from lowres_adapters.scaffold import KINDS, write_package
from lowres_adapters.specs import SCRIPT_PATTERN


@click.command()
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("name")
@click.option("--directory", type=click.Path(path_type=Path), default=None,
              help="Folder to create (default: ./NAME); it must not exist.")
@click.option("--language-name", default=None, help="lang-pack: the language's English name (default: ISO 639-3's).")
@click.option("--script", default="Latn", show_default=True, help="lang-pack: ISO 15924 script of the language.")
def new(kind: str, name: str, directory: Path | None, language_name: str | None, script: str) -> None:
    """Write a package registering a new KIND called NAME (adapter-type, lang-pack, alignment-loss, data-source).

    The package imports only lowres_adapters.plugin, declares its entry point, and its tests
    (the conformance kit for KIND) pass as written: `pip install -e NAME && pytest NAME`.
    """
    extra = {}
    if kind == "lang-pack":
        if not SCRIPT_PATTERN.match(script):
            raise LowresError(f"--script {script!r} must be an ISO 15924 code like Latn or Ethi")
        extra = {"__SCRIPT__": script, "__LANGNAME__": language_name or iso_language_name(name)}
    target = write_package(kind, name, directory or Path(name), **extra)
    click.echo(f"wrote {target}/ ({kind} {name!r}); next:")
    click.echo(f"  pip install -e {target} && pytest {target}")
    click.echo("  see README.md there for trying it with lowres and publishing it")
