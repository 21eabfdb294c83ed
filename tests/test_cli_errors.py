"""Every way the CLI can fail prints exactly one line on stderr, never a traceback or click's usage block."""

from __future__ import annotations

import pytest

import lowres_adapters.cli.evaluate as evaluate_module
from lowres_adapters.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``lowres ARGS`` in this process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def assert_one_line(err: str, expected: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], err
    assert "Traceback" not in err and "Usage:" not in err


@pytest.mark.parametrize("args,expected", [
    (("adapt", "nya", "--max-steps", "x"),
     "error: Invalid value for '--max-steps': 'x' is not a valid integer. (see 'lowres adapt --help')"),
    (("adapt",), "error: Missing argument 'LANGUAGE'. (see 'lowres adapt --help')"),
    (("adapt", "nya", "--no-such-option"), "--no-such-option"),
    (("no-such-command",), "error: No such command 'no-such-command'. (see 'lowres --help')"),
    (("bench", "--workload", "xyz"), "'xyz' is not one of 'mlm', 'clm', 'ttq'. (see 'lowres bench --help')"),
    (("evaluate", "somewhere", "--num-beams", "0"), "(see 'lowres evaluate --help')"),
    (("data", "fetch", "--bogus"), "(see 'lowres data fetch --help')"),
])
def test_usage_errors_are_one_line_naming_the_help_command(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)
    assert code == 2 and out == ""
    assert_one_line(err, expected)
    command = " ".join(("lowres", *(arg for arg in args[:2] if arg in ("adapt", "bench", "evaluate", "data", "fetch"))))
    assert err.rstrip().endswith(f"(see '{command} --help')")


def test_a_bare_group_still_shows_its_help(capsys):
    code, out, err = run_cli(capsys, "data")
    assert code == 2
    assert "Usage: lowres data" in out + err and "fetch" in out + err


def test_an_unexpected_exception_is_one_line_with_its_type_and_first_line(capsys, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("the disk moved\nsecond line that must not show")

    monkeypatch.setattr(evaluate_module, "_read_texts", explode)
    code, _, err = run_cli(capsys, "analyze", "--base", "somewhere")
    assert code == 1
    assert err == "error: RuntimeError: the disk moved (run with --debug for details)\n"
    with pytest.raises(RuntimeError, match="the disk moved"):
        main(["--debug", "analyze", "--base", "somewhere"])


def test_a_user_error_is_one_line_and_debug_shows_the_exception(capsys, tmp_path):
    from lowres_adapters.errors import LowresError

    code, _, err = run_cli(capsys, "evaluate", str(tmp_path / "missing"))
    assert code == 1 and err == f"error: {tmp_path / 'missing'}: no such run folder\n"
    with pytest.raises(LowresError, match="no such run folder"):
        main(["--debug", "evaluate", str(tmp_path / "missing")])


def test_evaluate_errors(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(capsys, "evaluate", str(empty))
    assert code == 1 and out == ""
    assert_one_line(err, f"{empty}")
    (empty / "lowres_adapter.json").write_text("{not json", encoding="utf-8")
    code, _, err = run_cli(capsys, "evaluate", str(empty), "--json")
    assert code == 1
    assert_one_line(err, "lowres_adapter.json")


@pytest.mark.parametrize("args,expected", [
    (("analyze", "only-one"), "error: give BEFORE_DIR AFTER_DIR, or --base AFTER_DIR"),
    (("analyze", "--base", "a", "b"), "error: with --base give exactly one folder: lowres analyze --base AFTER_DIR"),
    (("analyze", "no-such-before", "after"), "error: no-such-before: no such folder"),
    (("analyze",), "error: Missing argument 'CHECKPOINTS...'. (see 'lowres analyze --help')"),
])
def test_analyze_errors(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)
    assert code in (1, 2) and out == ""
    assert_one_line(err, expected)


@pytest.mark.parametrize("args,expected", [
    (("bench", "--steps", "0"), "error: steps, repeats and threads must be at least 1"),
    (("bench", "--setup", "lowres:turbo"), "error: unknown workload or setup"),
])
def test_bench_errors_come_before_any_run(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)
    assert code == 1 and out == ""
    assert_one_line(err, expected)
