"""``lowres plugins``, ``lowres list`` and ``lowres info``: what is installed."""

from __future__ import annotations

import dataclasses
import json

import click

from lowres_adapters.configs import config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import KIND_LABELS, get_registry
from lowres_adapters.specs import CommandSpec, LanguagePack, spec_name

# CLI word -> registry kind
LIST_KINDS = {
    "adapters": "adapter_types",
    "losses": "alignment_losses",
    "sources": "data_sources",
    "langs": "language_packs",
    "recipes": "recipes",
    "tasks": "task_kinds",
    "commands": "commands",
}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins, what each registered, and load errors."""
    infos = get_registry().plugins()
    if as_json:
        click.echo(json.dumps([info.to_json() for info in infos], indent=2))
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "unpackaged"
        click.echo(f"{info.name}  ({dist})")
        for kind, names in sorted(info.registered.items()):
            click.echo(f"  {KIND_LABELS[kind]}: {', '.join(names)}")
        for error in info.errors:
            click.secho(f"  error: {error}", fg="red")


def _describe(spec: object) -> str:
    description = getattr(spec, "description", "")
    if isinstance(spec, CommandSpec) and not description:
        from lowres_adapters.cli import LazyGroup  # lazy: lowres_adapters.cli imports this module

        command = LazyGroup._load(spec.name)
        return command.get_short_help_str(80) if command is not None else ""
    if isinstance(spec, LanguagePack):
        return f"{spec.name} ({spec.script}) - {description}"
    return description


@click.command("list")
@click.argument("kind", type=click.Choice(sorted(LIST_KINDS)))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(kind: str, as_json: bool) -> None:
    """List registered adapter types, losses, data sources, language packs, recipes, task kinds or commands."""
    entries = get_registry().entries(LIST_KINDS[kind])
    if as_json:
        rows = [
            {"name": spec_name(entry.spec), "description": _describe(entry.spec),
             "plugin": entry.plugin.name, "distribution": entry.plugin.requirement}
            for entry in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(spec_name(entry.spec)) for entry in entries), default=0)
    for entry in entries:
        click.echo(f"{spec_name(entry.spec):<{width}}  {_describe(entry.spec)}")


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(name: str, as_json: bool) -> None:
    """Show what NAME is (any kind), its plugin and its default settings."""
    registry = get_registry()
    found = []
    for kind in LIST_KINDS.values():
        if name in registry.names(kind):
            found.append((kind, registry.lookup(kind, name)))
    if not found:
        raise LowresError(
            f"nothing named {name!r} is registered; see `lowres list {'|'.join(LIST_KINDS)}`"
        )
    rows = []
    for kind, entry in found:
        spec = entry.spec
        row = {"kind": KIND_LABELS[kind], "name": name, "description": _describe(spec),
               "plugin": entry.plugin.name, "distribution": entry.plugin.requirement}
        config_class = getattr(spec, "config_class", None)
        if config_class is not None:
            row["defaults"] = config_to_dict(config_class())
        if isinstance(spec, LanguagePack):
            row["default_model"] = spec.default_model
            row["default_recipe"] = spec.default_recipe
            row["sources"] = [dataclasses.asdict(source) for source in spec.sources]
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value)
            click.echo(f"{key}: {value}")
