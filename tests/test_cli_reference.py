"""docs/cli.md is the CLI's own help, kept up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    generator = _load_generator()
    expected = generator.render()
    assert (ROOT / "docs" / "cli.md").read_text("utf-8") == expected, (
        "docs/cli.md is stale: run `python scripts/cli_reference.py`"
    )


def test_every_command_is_documented() -> None:
    from lowres_adapters.cli import COMMANDS

    text = (ROOT / "docs" / "cli.md").read_text("utf-8")
    for name in COMMANDS:
        assert f"`lowres {name}`" in text
