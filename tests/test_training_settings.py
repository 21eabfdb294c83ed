"""Run settings: validation, files, CLI assignments, precedence, schedules."""

from __future__ import annotations

import pytest

from lowres_adapters.errors import LowresError
from lowres_adapters.training.schedules import lr_multiplier
from lowres_adapters.training.settings import (
    LoopSettings,
    build_run_settings,
    merge_settings,
    parse_assignment,
    read_config_file,
    resolve_loop_settings,
)


def test_recipe_defaults_yield_to_user_overrides():
    loop = resolve_loop_settings({"lr": 1e-4, "batch_size": 16}, {"lr": 3e-4})
    assert (loop.lr, loop.batch_size) == (3e-4, 16)


@pytest.mark.parametrize("values, message", [
    ({"schedule": "exponential"}, "schedule must be one of"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"),
    ({"early_stopping_patience": 2}, "needs eval_every"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"nonsense": 1}, "unknown setting(s) nonsense"),
])
def test_invalid_loop_settings_are_one_line_errors(values, message):
    with pytest.raises(LowresError) as caught:
        resolve_loop_settings({}, values)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_run_settings_validate_language_and_sections():
    with pytest.raises(LowresError, match="ISO 639-3"):
        build_run_settings({"language": "english"})
    with pytest.raises(LowresError, match=r"\[loop\] must be a table"):
        build_run_settings({"language": "nya", "loop": 3})
    with pytest.raises(LowresError, match="unknown setting"):
        build_run_settings({"language": "nya", "data": {"txt": "a"}})
    settings = build_run_settings({"language": "nya", "train_also": "*.norm.weight", "data": {"eval_examples": 5}})
    assert settings.train_also == ("*.norm.weight",) and settings.data.eval_examples == 5


def test_assignments_parse_values_as_toml():
    assert parse_assignment("loop.warmup_ratio=0.1") == {"loop": {"warmup_ratio": 0.1}}
    assert parse_assignment("loop.progress=false") == {"loop": {"progress": False}}
    assert parse_assignment("recipe=cpt") == {"recipe": "cpt"}
    with pytest.raises(LowresError, match="unknown section"):
        parse_assignment("colour.red=1")
    with pytest.raises(LowresError, match="KEY=VALUE"):
        parse_assignment("loop.lr")


def test_sections_merge_key_by_key():
    merged = merge_settings({"adapter": "lora", "loop": {"lr": 1.0, "seed": 2}}, {"loop": {"lr": 2.0}})
    assert merged == {"adapter": "lora", "loop": {"lr": 2.0, "seed": 2}}


def test_config_files_must_exist_and_be_mappings(tmp_path):
    with pytest.raises(LowresError, match="not found"):
        read_config_file(tmp_path / "missing.toml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(LowresError, match="mapping"):
        read_config_file(listing)
    other = tmp_path / "run.json"
    other.write_text("{}")
    with pytest.raises(LowresError, match=".toml, .yaml"):
        read_config_file(other)


def test_total_steps_and_warmup_from_ratio():
    settings = LoopSettings(epochs=2, batch_size=8, warmup_ratio=0.1)
    assert settings.total_steps(100) == 25 and settings.warmup_for(25) == 2
    assert LoopSettings(max_steps=7).total_steps(10_000) == 7


@pytest.mark.parametrize("schedule, end", [("cosine", 0.1), ("linear", 0.1), ("constant", 1.0)])
def test_schedules_warm_up_then_decay_to_the_floor(schedule, end):
    multiplier = lr_multiplier(schedule, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert multiplier(0) == pytest.approx(1 / 11) and multiplier(10) == pytest.approx(1.0)
    assert multiplier(100) == pytest.approx(end)
    if schedule == "cosine":
        assert multiplier(55) == pytest.approx(0.1 + 0.9 * 0.5)
