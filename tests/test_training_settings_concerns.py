"""Loop settings by concern: one default per field, the same defaults as before, flat keys kept."""

from __future__ import annotations

import dataclasses

import pytest

from lowres_adapters.configs import config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.training.loop_settings import CONCERNS, LoopSettings, SpeedSettings
from lowres_adapters.training.settings import build_run_settings, parse_assignment, resolve_loop_settings
from lowres_adapters.training.speed import SpeedOptions, fast_text_defaults

# The loop's defaults before the split into concerns: the demo path must keep every one.
DEFAULTS_BEFORE = {
    "max_steps": None, "epochs": 1.0, "batch_size": 8, "grad_accum_steps": 1, "max_length": 128, "lr": 1e-3,
    "weight_decay": 0.0, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8, "schedule": "cosine",
    "warmup_ratio": 0.0, "warmup_steps": None, "min_lr_ratio": 0.0, "max_grad_norm": 1.0, "eval_every": 0,
    "eval_examples": 200, "early_stopping_patience": 0, "early_stopping_min_delta": 0.0, "restore_best": True,
    "save_every": 0, "keep_checkpoints": 1, "keep_checkpoints_at_end": False, "log_every": 1, "seed": 0,
    "progress": True, "packing": False, "masked_only_logits": False, "vocab_trim": False, "trim_negatives": 4096,
    "token_cache": False, "bf16": False, "compile": False, "gradient_checkpointing": False,
}


def test_every_field_belongs_to_one_concern_and_takes_its_default_from_there():
    owners: dict[str, str] = {}
    for concern, part in CONCERNS.items():
        for field in dataclasses.fields(part):
            assert field.name not in owners, f"{field.name} in {owners.get(field.name)} and {concern}"
            owners[field.name] = concern
    loop_fields = {field.name: field.default for field in dataclasses.fields(LoopSettings)}
    assert set(loop_fields) == set(owners)
    for name, concern in owners.items():
        assert loop_fields[name] == getattr(CONCERNS[concern](), name)


def test_defaults_are_unchanged_by_the_split():
    assert {key: value for key, value in config_to_dict(LoopSettings()).items() if key in DEFAULTS_BEFORE} == \
        DEFAULTS_BEFORE
    assert set(config_to_dict(LoopSettings())) - set(DEFAULTS_BEFORE) == {"chunk_size", "save_every_seconds", "device", "precision"}  # added since
    assert LoopSettings().speed == SpeedOptions() == SpeedSettings.plain()  # one set of speed defaults
    fast = fast_text_defaults()
    assert set(fast) == {field.name for field in dataclasses.fields(SpeedSettings)}
    assert fast["packing"] and fast["masked_only_logits"] and fast["vocab_trim"] and fast["token_cache"]


def test_concerns_are_views_of_the_flat_settings():
    loop = LoopSettings(lr=1e-2, max_steps=40, eval_every=5, save_every=10, packing=True, batch_size=16)
    assert loop.optimizer.lr == 1e-2 and loop.schedule_settings.max_steps == 40
    assert loop.evaluation.eval_every == 5 and loop.checkpoints.save_every == 10
    assert loop.speed.packing and loop.batching.batch_size == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        loop.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("assignment, message", [
    ("loop.adam_beta1=1.5", "adam betas"),
    ("loop.keep_checkpoints=0", "keep_checkpoints must be >= 1"),
    ("loop.vocab_trim=true", "vocab_trim needs masked_only_logits"),
    ("loop.chunk_size=0", "chunk_size must be at least 1"),
])
def test_each_concern_checks_its_fields_in_one_line_naming_the_section(assignment, message):
    values = {"language": "nya", **parse_assignment(assignment)}
    with pytest.raises(LowresError) as caught:
        build_run_settings(values)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(LowresError, match="^loop: "):
        resolve_loop_settings({}, parse_assignment(assignment)["loop"])


def test_flat_keys_from_the_command_line_reach_their_concern():
    settings = build_run_settings({"language": "nya", **parse_assignment("loop.warmup_ratio=0.1")})
    loop = resolve_loop_settings({"lr": 1e-4}, settings.loop)
    assert loop.schedule_settings.warmup_ratio == 0.1 and loop.optimizer.lr == 1e-4
    assert settings.to_json()["loop"] == {"warmup_ratio": 0.1}  # run_config.json records flat keys
