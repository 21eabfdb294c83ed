"""The ``lowres`` command line.

Subcommands live in their own modules and are imported only when used, so ``lowres plugins``
stays fast. The built-in table below registers through the ``register_commands`` hook like any
plugin's commands (built-in names are reserved). While any plugin has errors, every command
prints one warning line to stderr. User errors print one line; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from lowres_adapters import __version__
from lowres_adapters.errors import LowresError
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.registry import get_registry, registered_target

# command name -> "module:attribute" (a click command or group)
COMMANDS = {
    "plugins": "lowres_adapters.cli.plugins:plugins",
    "list": "lowres_adapters.cli.plugins:list_command",
    "info": "lowres_adapters.cli.plugins:info",
    "data": "lowres_adapters.cli.data:data",
    "adapt": "lowres_adapters.cli.adapt:adapt",
    "evaluate": "lowres_adapters.cli.evaluate:evaluate",
    "analyze": "lowres_adapters.cli.evaluate:analyze",
    "publish": "lowres_adapters.cli.hub:publish",
    "load": "lowres_adapters.cli.hub:load",
    "merge": "lowres_adapters.cli.merge:merge",
    "export": "lowres_adapters.cli.export:export",
    "bench": "lowres_adapters.cli.bench:bench",
    "new": "lowres_adapters.cli.new:new",
}


@hookimpl
def register_commands(cli: Any) -> None:
    """Register the built-in subcommands of :data:`COMMANDS`, each imported on first use."""
    for name, target in COMMANDS.items():
        cli.add_lazy(name, target)


class LazyGroup(click.Group):
    """A click group whose subcommands come from the registry and are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(get_registry().names("commands")) | set(COMMANDS)
        return [name for name in sorted(names) if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        return registered_target("commands", name, COMMANDS, "command")


def _warn_about_plugins() -> None:
    line = get_registry().warning_line()
    if line:
        click.echo(line, err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lowres")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Adapt language models to low-resource languages with adapters."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand != "plugins":  # `lowres plugins` prints the errors in full
        ctx.call_on_close(_warn_about_plugins)


def one_line(error: click.ClickException) -> str:
    """Return a click error as one line; a usage error names the help command to read.

    Click's own display prints the usage, a hint and the message on three lines or more.
    """
    message = " ".join(error.format_message().split())
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        return f"{message} (see '{context.command_path} --help')"
    return message


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; print user errors as one line and exit non-zero."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("LOWRES_DEBUG") == "1"
    try:
        return cli.main(args=args, prog_name="lowres", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.NoArgsIsHelpError as error:  # a bare `lowres` / `lowres data`: the help
        error.show()
        sys.exit(error.exit_code)
    except click.ClickException as error:
        click.echo(f"error: {one_line(error)}", err=True)
        sys.exit(error.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except LowresError as error:
        if debug:
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(f"error: {type(error).__name__}: {message} (run with --debug for details)", err=True)
        sys.exit(1)
