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


def test_plugins_add_commands_and_recipes_and_cannot_take_builtin_names(capsys) -> None:
    import click

    from lowres_adapters.cli import main
    from lowres_adapters.plugin import RecipeType, hookimpl
    from lowres_adapters.registry import Registry, reset_registry
    from lowres_adapters.training.recipes import get_recipe

    class HelloRecipe:
        """A recipe class stand-in (get_recipe only instantiates it)."""

    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command()
            @click.argument("who")
            def hello(who):
                """Say hello."""
                click.echo(f"hello {who}")

            cli.add_command(click.Command("list", callback=lambda: None))  # a built-in's name: rejected alone

        @hookimpl
        def register_recipes(self, register):
            register(RecipeType(name="hello_recipe", recipe_class=HelloRecipe, description="says hello"))

    registry = Registry(strict=False)
    info = registry.add_plugin(Plugin(), name="hello_plugin")
    reset_registry(registry)
    assert info.registered == {"commands": ["hello"], "recipes": ["hello_recipe"]}
    assert len(info.errors) == 1 and "command 'list' rejected" in info.errors[0]
    assert isinstance(get_recipe("hello-recipe"), HelloRecipe) and "language" in registry.names("recipes")

    main(["hello", "world"])
    captured = capsys.readouterr()
    assert captured.out == "hello world\n"
    assert captured.err.count("\n") == 1 and "hello_plugin (1 error)" in captured.err  # the one warning line

    main(["list", "adapters"])  # still the built-in list command
    assert "seq_bn" in capsys.readouterr().out
