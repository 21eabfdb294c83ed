"""Run the `lowres` CLI in-process and return its exit code and standard error (shared by the fault tests)."""

from __future__ import annotations

import pytest

from lowres_adapters.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run ``lowres ARGS``; return ``(exit code, what it printed on stderr)``."""
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    return code, capsys.readouterr().err
