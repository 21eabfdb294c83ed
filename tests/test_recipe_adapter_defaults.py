"""The decoder text recipes' own LoRA defaults (``decoder_lora_defaults``): what a run that names no
adapter settings gets, and how the run's own ``adapter_config`` wins key by key."""

from __future__ import annotations

import pytest
from training_support import tiny_run_files

from lowres_adapters.artifact import read_metadata
from lowres_adapters.registry import reset_registry
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes.language import DECODER_LORA, decoder_lora_defaults


@pytest.fixture
def files(tmp_path):
    paths = {**tiny_run_files(tmp_path), "tmp": tmp_path}
    reset_registry(None)  # the built-in adapter types (tiny_run_files installs the toy one only)
    return paths


def _run(files, name, recipe="language", **changes):
    values = dict(model=files["model"], text=files["text"], eval_text=files["eval_text"], pairs=files["pairs"],
                  eval_pairs=files["eval_pairs"], progress=False, max_steps=1, output=str(files["tmp"] / name))
    adapt("nya", recipe=recipe, **{**values, **changes})
    return read_metadata(files["tmp"] / name)


def test_lora_defaults_cover_every_linear_layer_of_the_top_half_of_a_decoder():
    defaults = decoder_lora_defaults("lora", masked=False, num_layers=30)
    assert defaults["leave_out"] == tuple(range(15))
    assert defaults["r"] == 16 and set(defaults["attn_matrices"]) == {"q", "k", "v"}
    assert defaults["intermediate_lora"] and defaults["output_lora"]
    assert decoder_lora_defaults("lora", masked=False, num_layers=5)["leave_out"] == (0, 1)
    assert decoder_lora_defaults("lora", masked=True, num_layers=12) == {}  # encoders: AdapterHub's own
    assert decoder_lora_defaults("seq_bn", masked=False, num_layers=30) == {}


def test_a_run_without_adapter_settings_trains_the_recipe_lora(files):
    metadata = _run(files, "plain")  # no --adapter: the recipe's default type, with its defaults
    assert metadata.adapter_type == "lora"
    config = metadata.adapter_config
    assert config["r"] == DECODER_LORA["r"] and config["alpha"] == DECODER_LORA["alpha"]
    assert list(config["leave_out"]) == [0]  # the tiny decoder has 2 layers: the bottom one left out
    assert config["intermediate_lora"] and config["output_lora"]


def test_the_runs_own_adapter_config_wins_key_by_key(files):
    config = _run(files, "own", adapter="lora", adapter_config={"r": 4, "leave_out": []}).adapter_config
    assert config["r"] == 4 and list(config["leave_out"]) == []
    assert config["alpha"] == DECODER_LORA["alpha"] and config["output_lora"]  # the keys it did not set


@pytest.mark.parametrize("recipe", ["cpt_sft", "sft"])
def test_the_translation_recipes_share_the_lora_defaults(files, recipe):
    config = _run(files, recipe, recipe=recipe).adapter_config
    assert config["r"] == DECODER_LORA["r"] and list(config["leave_out"]) == [0]
