"""Relation templates (patterns, packaged files, errors) and the graph recipe's held-out graph figure."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from training_support import install_toy_registry, save_tiny_model, write_corpus

from lowres_adapters import hookimpl
from lowres_adapters.data.examples import Edge
from lowres_adapters.data.splits import split_of
from lowres_adapters.data.templates import ENGLISH_TEMPLATES, load_templates
from lowres_adapters.errors import InputError
from lowres_adapters.specs import DataSource
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes.graph import GRAPH_SPLIT


def edge(start: str, relation: str, end: str) -> Edge:
    return Edge(start, relation, end, "ru", "ru", f"/a/{start}/{end}")


def test_a_pattern_places_both_terms_and_a_predicate_sits_between_them(tmp_path):
    path = tmp_path / "zho.json"
    path.write_text(json.dumps({"language": "zho", "end_mark": "。",
                                "predicates": {"IsA": "{start}是一种{end}", "Synonym": "同"}}), "utf-8")
    templates = load_templates(str(path))
    assert templates.verbalise(edge("狗", "IsA", "动物")) == "狗是一种动物。"
    assert templates.verbalise(edge("狗", "Synonym", "犬")) == "狗 同 犬。"
    assert templates.verbalise(edge("狗", "Antonym", "猫")) is None
    assert ENGLISH_TEMPLATES.verbalise(edge("dog", "IsA", "animal")) == "dog is a type of animal."


def test_half_a_pattern_and_bad_json_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"predicates": {"IsA": "{start} это"}}), "utf-8")
    with pytest.raises(InputError, match=r"bad\.json: expected both \{start\} and \{end\} in the pattern of IsA"):
        load_templates(str(path))
    path.write_text('{"predicates":\n {"IsA": }', "utf-8")
    with pytest.raises(InputError, match=r"bad\.json:2: expected JSON"):
        load_templates(str(path))


def test_packaged_templates_by_package_and_path():
    russian = load_templates("lowres_kg_cldr:templates/rus.json")
    assert russian.language == "rus"
    assert russian.verbalise(edge("колибри", "IsA", "птица")) == "колибри — это птица."
    with pytest.raises(InputError, match="expected a templates file templates/nope.json inside the package"):
        load_templates("lowres_kg_cldr:templates/nope.json")
    with pytest.raises(InputError, match="expected an installed package 'no_such_package'"):
        load_templates("no_such_package:x.json")


@dataclass(frozen=True)
class WordsConfig:
    """Settings of the throwaway graph.

    Attributes:
        languages: Start-node languages to keep.
    """

    languages: tuple[str, ...] = ()


def word_edges(config: WordsConfig):
    words = ["madzi", "moto", "nyumba", "mtengo", "dzuwa", "mwezi", "nyanja", "phiri", "mbalame", "galu"]
    for index, word in enumerate(words * 6):
        yield Edge(word, "RelatedTo", words[(index + 3) % len(words)], "ny", "ny", f"/a/{index}")


class WordsPlugin:
    @hookimpl
    def register_data_sources(self, register):
        register(DataSource(name="words_graph", config_class=WordsConfig, open=word_edges, yields="edges",
                            description="tiny test graph"))


def test_graph_recipe_scores_its_held_out_sentences_before_and_after(tmp_path):
    install_toy_registry().add_plugin(WordsPlugin(), name="words_plugin")
    train, held_out = write_corpus(tmp_path)
    output = tmp_path / "graph"
    result = adapt("nya", recipe="graph", max_steps=4, output=str(output), model=str(save_tiny_model(tmp_path / "m")),
                   adapter="toy", eval_text=str(held_out), progress=False, lr=1e-2,
                   recipe_options={"source": "words_graph", "eval_sentences": 3})
    test_ids = [f"/a/{i}" for i in range(60) if split_of(f"/a/{i}", GRAPH_SPLIT, 0) == "test"]
    base, adapted = result.metrics["base"], result.metrics["adapted"]
    assert base["graph_eval_sentences"] == adapted["graph_eval_sentences"] == min(3, len(test_ids))
    assert adapted["graph_sentences"]["test"] == len(test_ids)
    assert sum(adapted["graph_sentences"].values()) == 60
    assert base["graph_bits_per_char"] > 0 and adapted["graph_bits_per_char"] != base["graph_bits_per_char"]


def test_graph_recipe_trains_decoders_at_its_measured_rate():
    from lowres_adapters.training.lm_objectives import CAUSAL_LM, MASKED_LM
    from lowres_adapters.training.recipes.graph import GraphRecipe

    assert GraphRecipe().loop_defaults(CAUSAL_LM)["lr"] == 3e-3  # 1e-2 diverged on CLDR Chinese
    assert GraphRecipe().loop_defaults(MASKED_LM)["lr"] == 1e-4 and GraphRecipe().loop_defaults(MASKED_LM)["max_steps"] == 25_000
