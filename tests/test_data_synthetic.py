"""Synthetic data: lexicon substitution and template sentences from any edge source."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lowres_adapters.data.examples import Edge
from lowres_adapters.data.synthetic import (
    GraphSentencesConfig,
    LexiconSubstitutionConfig,
    open_graph_sentences,
    open_lexicon_substitution,
    read_lexicon,
    substitute,
)
from lowres_adapters.errors import InputError, LowresError
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import DataSource


def test_substitute_replaces_known_words_case_insensitively():
    lexicon = {"water": "madzi", "good": "abwino"}
    assert substitute("Water is good.", lexicon) == ("madzi is abwino.", 2 / 3)


def test_lexicon_substitution_pairs_are_marked_synthetic(tmp_path):
    text = tmp_path / "eng.txt"
    text.write_text("the water is good\nnothing known here\n", encoding="utf-8")
    lexicon = tmp_path / "lex.tsv"
    lexicon.write_text("water\tmadzi\ngood\tabwino\nthe\tthe\nis\tndi\n", encoding="utf-8")
    config = LexiconSubstitutionConfig(text_path=str(text), lexicon_path=str(lexicon), source_lang="eng",
                                       target_lang="nya", min_coverage=0.5)
    pairs = list(open_lexicon_substitution(config))
    assert [(p.source, p.target) for p in pairs] == [("the water is good", "the madzi ndi abwino")]
    assert pairs[0].provenance.synthetic and pairs[0].id == "synthetic:eng.txt:1"


def test_bad_lexicon_line(tmp_path):
    lexicon = tmp_path / "lex.tsv"
    lexicon.write_text("water\tmadzi\nbroken line\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"lex\.tsv:2: expected 2 non-empty tab-separated columns"):
        read_lexicon(lexicon)


@dataclass(frozen=True)
class ToyGraphConfig:
    language: str = "sw"


def _open_toy_graph(config: ToyGraphConfig):
    yield Edge("mbwa", "IsA", "mnyama", config.language, config.language, "e1")
    yield Edge("mbwa", "NotARelation", "x", config.language, config.language, "e2")


class ToyGraphPlugin:
    @hookimpl
    def register_data_sources(self, register):
        register(DataSource(name="toy_graph", config_class=ToyGraphConfig, open=_open_toy_graph, yields="edges",
                            description="toy edges"))
        register(DataSource(name="toy_text", config_class=ToyGraphConfig, open=_open_toy_graph, yields="text",
                            description="not edges"))


def test_graph_sentences_from_any_registered_edge_source(empty_registry):
    empty_registry.add_plugin(ToyGraphPlugin(), name="toy")
    sentences = list(open_graph_sentences(GraphSentencesConfig(graph="toy_graph", graph_config={"language": "sw"})))
    assert [(s.text, s.lang, s.provenance.synthetic) for s in sentences] == [("mbwa is a type of mnyama.", "swa", True)]
    with pytest.raises(LowresError, match="yields text, not edges"):
        list(open_graph_sentences(GraphSentencesConfig(graph="toy_text")))
    with pytest.raises(LowresError, match="unknown setting"):
        list(open_graph_sentences(GraphSentencesConfig(graph="toy_graph", graph_config={"lang": "sw"})))
