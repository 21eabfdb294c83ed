"""The `parallel` source and `read_pairs_file`: formats, filters, ids, errors."""

from __future__ import annotations

import json

import pytest

from lowres_adapters.data.parallel import ParallelSourceConfig, open_parallel, read_pairs_file
from lowres_adapters.errors import InputError


def test_tsv_with_and_without_ids(tmp_path):
    two = tmp_path / "two.tsv"
    two.write_text("Hello\tMoni\nThank you\tZikomo\n", encoding="utf-8")
    three = tmp_path / "three.tsv"
    three.write_text("v1\tHello\tMoni\n", encoding="utf-8")
    assert [(p.id, p.source, p.target) for p in read_pairs_file(two, "eng", "nya")] == [
        ("two.tsv:1", "Hello", "Moni"), ("two.tsv:2", "Thank you", "Zikomo")]
    assert read_pairs_file(three, "eng", "nya")[0].id == "v1"


def test_wrong_column_count(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("a\tb\nc\td\te\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.tsv:2: expected 2 tab-separated columns, found 3"):
        read_pairs_file(path, "eng", "nya")
    path.write_text("just one column\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.tsv:1: expected 2 tab-separated columns .* found 1"):
        read_pairs_file(path, "eng", "nya")


def test_jsonl_with_language_keys(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "GEN.1.1", "eng": "In the beginning", "nya": "Pachiyambi"}) + "\n",
                    encoding="utf-8")
    pair = read_pairs_file(path, "eng", "nya")[0]
    assert (pair.id, pair.source, pair.target) == ("GEN.1.1", "In the beginning", "Pachiyambi")


def test_moses_files_must_have_equal_line_counts(tmp_path):
    source, target = tmp_path / "x.eng", tmp_path / "x.nya"
    source.write_text("a\nb\nc\n", encoding="utf-8")
    target.write_text("A\nB\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.eng:3: expected as many lines as .*x\.nya \(2\), found 3"):
        read_pairs_file(source, "eng", "nya", target_path=target)
    target.write_text("A\nB\nC\n", encoding="utf-8")
    pairs = read_pairs_file(source, "eng", "nya", target_path=target)
    assert [(p.id, p.target) for p in pairs] == [("x.eng:1", "A"), ("x.eng:2", "B"), ("x.eng:3", "C")]


def test_length_ratio_filter_and_dedup_keep_ids(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("id1\tshort\tfive!\nid2\tx\ta very much longer target\nid3\tshort\tfive!\nid4\tok\tok\n",
                    encoding="utf-8")
    config = ParallelSourceConfig(path=str(path), source_lang="eng", target_lang="nya", max_length_ratio=2.0)
    assert [p.id for p in open_parallel(config)] == ["id1", "id4"]
    loose = ParallelSourceConfig(path=str(path), source_lang="eng", target_lang="nya", max_length_ratio=0, dedup=False)
    assert [p.id for p in open_parallel(loose)] == ["id1", "id2", "id3", "id4"]


def test_empty_side_is_an_error_for_users_files(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("a\tb\nc\t \n", encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.tsv:2: expected non-empty source and target"):
        read_pairs_file(path, "eng", "nya")


def test_blank_moses_files_are_empty(tmp_path):
    source, target = tmp_path / "x.eng", tmp_path / "x.nya"
    source.write_text("\n\n", encoding="utf-8")
    target.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.eng:1: expected at least one pair of texts, found none"):
        read_pairs_file(source, "eng", "nya", target_path=target)
