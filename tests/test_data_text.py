"""The `text` source: NFC, dedup, filters, splits, formats; `read_text_file`."""

from __future__ import annotations

import gzip
import json

import pytest

from lowres_adapters.data.splits import SPLITS
from lowres_adapters.data.text import TextSourceConfig, open_text, read_text_file
from lowres_adapters.errors import InputError, LowresError


def _texts(**settings):
    return [example.text for example in open_text(TextSourceConfig(**settings))]


def test_nfc_exact_and_near_duplicates(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Mwana\u0301 akugona.\nMwan\u00e1 akugona.\nmwaná akugona!\nNdi bwino\n", encoding="utf-8")
    assert _texts(path=str(path), lang="nya") == ["Mwan\u00e1 akugona.", "mwaná akugona!", "Ndi bwino"]
    assert _texts(path=str(path), lang="nya", near_dedup=True) == ["Mwan\u00e1 akugona.", "Ndi bwino"]
    assert len(_texts(path=str(path), lang="nya", dedup=False)) == 4


def test_fuzzy_dedup_catches_a_changed_word_in_a_long_sentence(tmp_path):
    path = tmp_path / "a.txt"
    base = "The Tools menu contains commands to check spelling, to trace sheet references and to find mistakes."
    other = "Charts show data series as bars, lines or pies; choose the type in the chart wizard dialog."
    path.write_text("\n".join([base, base.replace("mistakes", "errors"), other]) + "\n", encoding="utf-8")
    assert len(_texts(path=str(path), lang="eng", near_dedup=True)) == 3
    assert _texts(path=str(path), lang="eng", fuzzy_dedup=True) == [base, other]


def test_length_and_script_filters(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("ལག་ཆས་ཚུ་\nTools menu\nཁ\nལག་ཆས་ཚུ་ Tools\n", encoding="utf-8")
    assert _texts(path=str(path), lang="dzo", script="Tibt") == ["ལག་ཆས་ཚུ་", "ཁ", "ལག་ཆས་ཚུ་ Tools"]
    assert _texts(path=str(path), lang="dzo", script="Tibt", min_chars=2, max_chars=11) == ["ལག་ཆས་ཚུ་"]


def test_jsonl_gz_and_folders_keep_ids(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "b.jsonl").write_text(json.dumps({"id": "x1", "body": "two"}) + "\n", encoding="utf-8")
    (folder / "a.txt.gz").write_bytes(gzip.compress(b"one\n"))
    examples = list(open_text(TextSourceConfig(path=str(folder), lang="eng", text_field="body")))
    assert [(e.id, e.text) for e in examples] == [("a.txt.gz:1", "one"), ("x1", "two")]


def test_splits_partition_the_corpus_deterministically(tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"sentence number {i}\n" for i in range(300)), encoding="utf-8")
    parts = {split: _texts(path=str(path), lang="eng", split=split) for split in SPLITS}
    assert sorted(sum(parts.values(), [])) == sorted(_texts(path=str(path), lang="eng"))
    assert 180 < len(parts["train"]) < 290 and parts["validation"] and parts["test"]
    assert parts["test"] == _texts(path=str(path), lang="eng", split="test")


def test_bad_settings_and_bad_files(tmp_path):
    with pytest.raises(LowresError, match="unknown language code 'xx'"):
        TextSourceConfig(path="a.txt", lang="xx")
    with pytest.raises(ValueError, match="split must be one of"):
        TextSourceConfig(split="dev")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match="bad.jsonl:2: expected a JSON object with a string field 'text'"):
        list(open_text(TextSourceConfig(path=str(bad), lang="eng")))


def test_read_text_file(tmp_path):
    path = tmp_path / "held.txt"
    path.write_text("one\n\ntwo\n", encoding="utf-8")
    examples = read_text_file(path, "nya")
    assert [(e.id, e.text, e.lang) for e in examples] == [("held.txt:1", "one", "nya"), ("held.txt:3", "two", "nya")]
    with pytest.raises(LowresError, match="use 'nya'"):
        read_text_file(path, "ny")
