"""ConceptNet assertions -> edges -> template sentences, on fixtures made here; the plugin registers both sources."""

from __future__ import annotations

import gzip
import json

import pytest

from lowres_adapters.data.graphs import group_by_language
from lowres_adapters.data.templates import ENGLISH_PREDICATES, load_templates
from lowres_adapters.errors import InputError
from lowres_kg_conceptnet.assertions import (
    ConceptNetConfig,
    iter_assertions,
    open_conceptnet,
    write_assertions,
)

ROWS = [
    ("/a/[/r/IsA/,/c/en/read/v/,/c/en/activity/n/]", "/r/IsA", "/c/en/read/v", "/c/en/activity/n"),
    ("/a/[/r/UsedFor/,/c/en/fishing_rod/n/,/c/en/catch_fish/]", "/r/UsedFor", "/c/en/fishing_rod/n", "/c/en/catch_fish"),
    ("/a/[/r/Synonym/,/c/sw/mbwa/n/,/c/en/dog/n/]", "/r/Synonym", "/c/sw/mbwa/n", "/c/en/dog/n"),
    ("/a/[/r/ExternalURL/,/c/en/dog/,http://dbpedia.org/Dog]", "/r/ExternalURL", "/c/en/dog", "http://dbpedia.org/Dog"),
    ("/a/[/r/RelatedTo/,/c/en/dog/n/,/c/en/dog/v/]", "/r/RelatedTo", "/c/en/dog/n", "/c/en/dog/v"),
    ("/a/[/r/dbpedia/genre/,/c/en/x/,/c/en/y/]", "/r/dbpedia/genre", "/c/en/x", "/c/en/y"),
]


@pytest.fixture
def assertions(tmp_path):
    path = tmp_path / "assertions.csv.gz"
    lines = "".join("\t".join((*row, json.dumps({"weight": 1.0}))) + "\n" for row in ROWS)
    path.write_bytes(gzip.compress(lines.encode("utf-8")))
    return path


def test_there_are_33_english_templates():
    assert len(ENGLISH_PREDICATES) == 33
    assert ENGLISH_PREDICATES["HasA"] == "belongs to"


def test_terms_are_the_fourth_uri_component_and_bad_edges_dropped(assertions):
    edges = list(iter_assertions(assertions))
    assert [(e.start, e.relation, e.end, e.start_lang, e.end_lang) for e in edges] == [
        ("read", "IsA", "activity", "en", "en"),
        ("fishing rod", "UsedFor", "catch fish", "en", "en"),
        ("mbwa", "Synonym", "dog", "sw", "en"),
        ("x", "dbpedia/genre", "y", "en", "en"),
    ]
    assert edges[0].id == ROWS[0][0]


def test_sentences_use_templates_and_group_by_start_language(assertions):
    sentences = list(open_conceptnet(ConceptNetConfig(path=str(assertions))))
    assert [s.text for s in sentences] == [
        "read is a type of activity.", "fishing rod is used for catch fish.", "mbwa is a synonym of dog."]
    assert all(s.provenance.synthetic for s in sentences)
    groups = group_by_language(sentences)
    assert sorted(groups) == ["eng", "swa"] and len(groups["eng"]) == 2
    swahili = list(open_conceptnet(ConceptNetConfig(path=str(assertions), languages=("swa",))))
    assert [s.text for s in swahili] == ["mbwa is a synonym of dog."]


def test_target_language_templates_from_json(assertions, tmp_path):
    templates = tmp_path / "sw.json"
    templates.write_text(json.dumps({"language": "swa", "predicates": {"Synonym": "ni kisawe cha"}}), encoding="utf-8")
    sentences = list(open_conceptnet(ConceptNetConfig(path=str(assertions), templates=str(templates))))
    assert [s.text for s in sentences] == ["mbwa ni kisawe cha dog."]
    templates.write_text(json.dumps({"predicates": {"IsA": 3}}), encoding="utf-8")
    with pytest.raises(InputError, match="expected"):
        load_templates(str(templates))


def test_wrong_column_count_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("\t".join((*ROWS[0], "{}")) + "\n/a/x\t/r/IsA\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv:2: expected 5 tab-separated columns .* found 2"):
        list(iter_assertions(path))


def test_write_assertions_round_trips(assertions, tmp_path):
    edges = list(iter_assertions(assertions))
    out = tmp_path / "copy.csv.gz"
    assert write_assertions(edges, out) == len(edges)
    again = list(iter_assertions(out))
    assert [(e.start, e.relation, e.end, e.start_lang) for e in again] == [
        (e.start, e.relation, e.end, e.start_lang) for e in edges]


def test_the_plugin_registers_both_sources_through_its_entry_point():
    from lowres_adapters.registry import get_registry

    registry = get_registry()
    assert registry.data_source("conceptnet").yields == "text"
    assert registry.data_source("conceptnet_edges").yields == "edges"
    assert registry.provider("data_sources", "conceptnet_edges").distribution == "lowres-kg-conceptnet"


def test_data_stats_counts_the_file_through_the_named_source(assertions, capsys):
    from lowres_adapters.cli import main

    args = ["data", "stats", "--graph", str(assertions), "--graph-source", "conceptnet_edges", "--json"]
    assert main(args) in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert result["edges"] == 4 and result["source"] == "conceptnet_edges"
    assert result["relations"] == {"IsA": 1, "UsedFor": 1, "Synonym": 1, "dbpedia/genre": 1}
