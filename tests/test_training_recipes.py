"""Recipes on tiny models: graph sentences, SFT prompts (answer-only, both directions, mix-in),
``cpt_sft`` stages continuing on one adapter."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from training_support import tiny_run_files

from lowres_adapters import hookimpl
from lowres_adapters.artifact import read_metadata, read_tensors
from lowres_adapters.data.examples import Edge, PairExample
from lowres_adapters.data.languages import language_name
from lowres_adapters.errors import LowresError
from lowres_adapters.specs import DataSource
from lowres_adapters.testing.tiny import TINY_CORPUS
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes import get_recipe, recipe_names
from lowres_adapters.training.recipes.cpt_sft import instruction_examples, mixed_in_texts

ENGLISH = TINY_CORPUS[1::2]
CHICHEWA = TINY_CORPUS[0::2]


@pytest.fixture
def files(tmp_path):
    return {**tiny_run_files(tmp_path), "tmp": tmp_path}


def common(files, **changes):
    values = dict(model=files["model"], adapter="toy", text=files["text"], eval_text=files["eval_text"],
                  pairs=files["pairs"], eval_pairs=files["eval_pairs"], progress=False, lr=1e-2)
    values.update(changes)
    return values


def test_every_listed_recipe_of_this_area_loads():
    assert {"language", "graph", "cpt", "sft", "cpt_sft"} <= set(recipe_names())
    assert get_recipe("cpt-sft").name == "cpt_sft"
    with pytest.raises(LowresError, match="unknown recipe 'nosuch'; available: .*language"):
        get_recipe("nosuch")


def test_instructions_go_both_ways_and_mix_in_keeps_its_share():
    pairs = [PairExample(en, ny, "eng", "nya", f"p{i}") for i, (en, ny) in enumerate(zip(ENGLISH, CHICHEWA))]
    examples = instruction_examples(pairs, "nya", "both", "Translate from {source_name} to {target_name}: {source}")
    assert len(examples) == 2 * len(pairs)
    nya = language_name("nya")
    assert examples[0] == (f"Translate from English to {nya}: {ENGLISH[0]}", " " + CHICHEWA[0])
    assert examples[1] == (f"Translate from {nya} to English: {CHICHEWA[0]}", " " + ENGLISH[0])
    mixed = mixed_in_texts(pairs * 10, "nya", 0.2, sft_examples=40)
    assert len(mixed) == 10 and set(mixed) <= set(ENGLISH)  # 10 / (40 + 10) = 20%
    assert mixed_in_texts(pairs, "nya", 0.0, 40) == []


def test_sft_trains_on_answers_and_scores_held_out_answers(files):
    result = adapt("nya", recipe="sft", max_steps=25, output=str(files["tmp"] / "sft"), **common(files))
    base, adapted = result.metrics["base"], result.metrics["adapted"]
    assert base["answer_examples"] == adapted["answer_examples"] == 9  # the 9 held-out pairs, into Chichewa
    assert adapted["answer_bits_per_char"] < base["answer_bits_per_char"]
    start = json.loads((files["tmp"] / "sft" / "train_log.jsonl").read_text().splitlines()[0])
    # 9 pairs into Chichewa (the default direction) + ceil(0.2 / 0.8 x 9) = 3 plain English texts
    assert start["train_examples"] == 12
    both = adapt("nya", recipe="sft", max_steps=1, output=str(files["tmp"] / "sft-both"),
                 recipe_options={"directions": "both"}, **common(files))
    # 9 pairs x 2 directions = 18 instructions + ceil(0.2 / 0.8 x 18) = 5 plain English texts
    assert json.loads((both.run_dir / "train_log.jsonl").read_text().splitlines()[0])["train_examples"] == 23
    loop = json.loads((files["tmp"] / "sft" / "run_config.json").read_text())["loop"]
    assert loop["packing"] and loop["masked_only_logits"] and not loop["vocab_trim"]  # full softmax for SFT
    assert read_metadata(files["tmp"] / "sft").recipe == "sft"


def test_cpt_sft_writes_both_stages_and_sft_continues_from_cpt(files):
    output = files["tmp"] / "two"
    result = adapt("nya", recipe="cpt_sft", max_steps=6, output=str(output),
                   recipe_options={"sft_lr": 1e-9}, **common(files))
    for stage in ("cpt", "sft"):
        folder = output / "stages" / stage
        assert read_metadata(folder).recipe == stage
        assert {"adapter.safetensors", "metrics.json", "train_log.jsonl", "README.md"} <= {p.name for p in folder.iterdir()}
    cpt, sft, final = (read_tensors(output / "stages" / "cpt"), read_tensors(output / "stages" / "sft"),
                       read_tensors(output))
    for name in cpt:
        # a tiny SFT learning rate leaves the CPT adapter almost as it was: SFT started from it
        torch.testing.assert_close(sft[name], cpt[name], atol=1e-6, rtol=0)
        assert torch.equal(final[name], sft[name])
    assert not torch.equal(cpt["toy_nya.up.weight"], torch.zeros_like(cpt["toy_nya.up.weight"]))
    assert set(result.metrics["stages"]) == {"cpt", "sft"}
    assert read_metadata(output).recipe == "cpt_sft"
    stages = {json.loads(line)["stage"] for line in (output / "train_log.jsonl").read_text().splitlines()}
    assert stages == {"cpt", "sft"}
    run_config = json.loads((output / "stages" / "sft" / "run_config.json").read_text())
    assert run_config["loop"]["lr"] == 1e-9 and run_config["loop"]["warmup_ratio"] == 0.1


def test_sft_needs_pairs(files):
    values = common(files)
    values.pop("pairs")
    values.pop("eval_pairs")
    with pytest.raises(LowresError, match="needs parallel pairs"):
        adapt("nya", recipe="sft", output=str(files["tmp"] / "x"), **values)


@dataclass(frozen=True)
class TinyGraphConfig:
    """Settings of the throwaway graph source.

    Attributes:
        languages: Start-node languages to keep.
    """

    languages: tuple[str, ...] = ()


def tiny_edges(config: TinyGraphConfig):
    words = [("madzi", "water"), ("moto", "fire"), ("nyumba", "house"), ("mtengo", "tree"), ("dzuwa", "sun")]
    for index, (word, english) in enumerate(words * 4):
        yield Edge(word, "Synonym", english, "ny", "en", f"/a/{index}")
        yield Edge(english, "Synonym", word, "en", "ny", f"/b/{index}")


class TinyGraphPlugin:
    @hookimpl
    def register_data_sources(self, register):
        register(DataSource(name="tiny_graph", config_class=TinyGraphConfig, open=tiny_edges, yields="edges",
                            description="tiny test graph"))


def test_graph_recipe_trains_on_target_language_sentences(files):
    from lowres_adapters.registry import get_registry

    get_registry().add_plugin(TinyGraphPlugin(), name="tiny_graph_plugin")
    output = files["tmp"] / "graph"
    result = adapt("nya", recipe="graph", max_steps=3, output=str(output),  # graph only (mix: test_graph_mix.py)
                   recipe_options={"source": "tiny_graph", "text_share": 0.0}, **common(files))
    assert read_metadata(output).datasets == ["tiny_graph"]
    start = json.loads((output / "train_log.jsonl").read_text().splitlines()[0])
    # only the 20 edges starting in Chichewa; about 80% of them in the training split
    assert 10 <= start["train_examples"] < 20
    # the reported figure is the saved adapter's, rescored on the held-out file
    from lowres_adapters.evaluation.language_modeling import score_texts
    from lowres_adapters.loading import load_folder

    loaded = load_folder(output)
    held_out = [line for line in open(files["eval_text"], encoding="utf-8").read().splitlines() if line]
    rescored = score_texts(loaded.model, loaded.tokenizer, held_out, max_length=512)
    assert result.metrics["adapted"]["bits_per_char"] == pytest.approx(rescored.bits_per_char, rel=1e-5)
    assert result.metrics["adapted"]["bits_per_char"] != pytest.approx(result.metrics["base"]["bits_per_char"])


def test_graph_source_without_the_language_is_one_line_error(files):
    from lowres_adapters.registry import get_registry

    get_registry().add_plugin(TinyGraphPlugin(), name="tiny_graph_plugin")
    with pytest.raises(LowresError, match="no sentences for tum"):
        adapt("tum", recipe="graph", output=str(files["tmp"] / "g"), recipe_options={"source": "tiny_graph"},
              **common(files))


def test_graph_recipe_without_a_source_names_the_option(files):
    """Graphs come from plugins, so the core names no default graph source."""
    with pytest.raises(LowresError, match="recipe_options.source=NAME") as caught:
        adapt("nya", recipe="graph", output=str(files["tmp"] / "nosource"), **common(files))
    assert "\n" not in str(caught.value)


def test_resuming_cpt_sft_reuses_the_finished_cpt_stage(files, capsys):
    import shutil

    output = files["tmp"] / "two"
    adapt("nya", recipe="cpt_sft", max_steps=4, output=str(output), **common(files))
    finished = read_tensors(output)
    cpt_before = (output / "stages" / "cpt" / "adapter.safetensors").read_bytes()
    shutil.rmtree(output / "stages" / "sft")  # as if the run died during SFT
    capsys.readouterr()
    adapt("nya", recipe="cpt_sft", max_steps=4, output=str(output), resume=True, **common(files))
    assert "cpt: already finished" in capsys.readouterr().err
    assert (output / "stages" / "cpt" / "adapter.safetensors").read_bytes() == cpt_before
    for name, tensor in read_tensors(output).items():
        assert torch.equal(tensor, finished[name])
