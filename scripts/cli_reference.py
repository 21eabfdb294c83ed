"""Write docs/cli.md from the CLI's own help texts (a test checks it is up to date).

Usage: python scripts/cli_reference.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lowres_adapters.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _sections(command: click.Command, path: list[str]) -> list[str]:
    ctx = click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100,
                        help_option_names=["-h", "--help"])
    text = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                text.extend(_sections(sub, [*path, name]))
    return text


def render() -> str:
    """Return the Markdown reference for every `lowres` command."""
    header = [
        "# CLI reference",
        "",
        "Generated from the commands' own help by `python scripts/cli_reference.py`;",
        "`tests/test_cli_reference.py` fails when it is out of date. User errors print one line",
        "(`error: ...`) and exit 1; `lowres --debug ...` shows the traceback.",
        "",
    ]
    return "\n".join(header + _sections(cli, ["lowres"])).rstrip() + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if DOC.read_text("utf-8") == render() else 1)
    DOC.write_text(render(), "utf-8")
    print(f"wrote {DOC}")
