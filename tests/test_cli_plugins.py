"""`lowres plugins`, `lowres list`, `lowres info` and the CLI's one-line errors, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_registry import BROKEN_PLUGIN, GOOD_PLUGIN, _fake_distribution


def run_cli(*args: str, extra_path: Path | None = None, strict: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["LOWRES_STRICT_PLUGINS"] = "1" if strict else "0"
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "lowres_adapters", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    _fake_distribution(root, "lowres-broken-plugin", "lowres_broken_plugin", BROKEN_PLUGIN)
    _fake_distribution(root, "lowres-good-plugin", "lowres_good_plugin", GOOD_PLUGIN)
    return root


def test_plugins_json_lists_builtins() -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    builtin = plugins["lowres_adapters.builtin.adapter_types"]
    assert builtin["distribution"] == "lowres-adapters"
    assert builtin["errors"] == []


def test_broken_plugin_is_reported_and_cli_still_works(plugin_dir: Path) -> None:
    result = run_cli("plugins", "--json", extra_path=plugin_dir)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "broken on purpose" in plugins["lowres_broken_plugin"]["errors"][0]
    assert plugins["lowres_good_plugin"]["registered"] == {"adapter_types": ["entry_point_bn"]}

    listed = run_cli("list", "adapters", extra_path=plugin_dir)
    assert listed.returncode == 0, listed.stderr
    assert "entry_point_bn" in listed.stdout

    human = run_cli("plugins", extra_path=plugin_dir)
    assert human.returncode == 0
    assert "error: failed to import lowres_broken_plugin" in human.stdout


def test_info_shows_defaults_of_a_plugin_type(plugin_dir: Path) -> None:
    result = run_cli("info", "entry_point_bn", "--json", extra_path=plugin_dir)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["defaults"] == {"size": 4}
    assert row["distribution"] == "lowres-good-plugin==9.9"


def test_user_error_is_one_line_without_traceback() -> None:
    result = run_cli("info", "no_such_thing")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: nothing named 'no_such_thing'")
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback() -> None:
    result = run_cli("--debug", "info", "no_such_thing")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.rstrip().splitlines()[-1].startswith(
        "lowres_adapters.errors.LowresError: nothing named 'no_such_thing'")


def test_a_package_registering_lora_keeps_every_builtin(tmp_path: Path) -> None:
    from test_registry import BUILTIN_TYPES, CLASHING_PLUGIN

    _fake_distribution(tmp_path, "aaa-clash-plugin", "aaa_clash_plugin", CLASHING_PLUGIN)
    listed = run_cli("list", "adapters", extra_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()}
    assert BUILTIN_TYPES | {"clash_extra"} <= names
    warnings = [line for line in listed.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "aaa-clash-plugin==9.9" in warnings[0]

    info = run_cli("info", "prompt_tuning", extra_path=tmp_path)
    assert info.returncode == 0 and "kind: adapter type" in info.stdout

    shown = run_cli("plugins", extra_path=tmp_path)
    assert shown.returncode == 0
    assert "error: adapter type 'lora' rejected" in shown.stdout
    assert "warning:" not in shown.stderr  # `lowres plugins` shows the detail instead

    clean = run_cli("list", "adapters")
    assert clean.returncode == 0 and clean.stderr == ""
