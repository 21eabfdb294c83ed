"""The ``cpt`` replay mix: which texts are replayed, how many, where they go, and the run wiring."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from training_support import install_toy_registry, tiny_run_files

from lowres_adapters.data.examples import PackData, PairExample, TextExample
from lowres_adapters.errors import LowresError
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes.cpt_sft import CptOptions, CptRecipe, CptSftOptions, CptSftRecipe
from lowres_adapters.training.replay import interleave, replay_chars_wanted, replay_texts

ENGLISH = [f"English verse number {i} about light." for i in range(40)]
CHICHEWA = [f"Vesi la Chichewa nambala {i} la kuunika." for i in range(40)]


def pack(train: int = 30) -> PackData:
    pairs = [PairExample(en, ny, "eng", "nya", f"p{i}") for i, (en, ny) in enumerate(zip(ENGLISH, CHICHEWA))]
    texts = [TextExample(ny, f"t{i}", "nya") for i, ny in enumerate(CHICHEWA)]
    return PackData(text={"train": texts[:train], "test": texts[train:]},
                    pairs={"train": pairs[:train], "test": pairs[train:]})


def test_share_is_counted_in_characters():
    assert replay_chars_wanted(800, 0.2) == 200  # 200 / (800 + 200) = 20%
    assert replay_chars_wanted(800, 0.0) == 0
    with pytest.raises(LowresError, match="replay_share"):
        replay_chars_wanted(800, 1.0)


def test_pairs_replay_the_other_side_of_training_pairs_only_evenly():
    data = pack()
    wanted = replay_chars_wanted(sum(len(t.text) for t in data.text["train"]), 0.25)
    replayed = replay_texts("pairs", {}, data, "nya", wanted)
    texts = [example.text for example in replayed]
    assert set(texts) <= set(ENGLISH[:30])  # English side, training split: no test verse, no Chichewa
    assert abs(sum(map(len, texts)) - wanted) <= len(ENGLISH[0]) + 2
    indices = [ENGLISH.index(text) for text in texts]
    assert indices[0] < 5 and indices[-1] > 24  # spread over the corpus, not its first verses
    assert replay_texts("pairs:eng", {}, data, "nya", wanted) == replayed
    with pytest.raises(LowresError, match="no training pairs with another side in zho"):
        replay_texts("pairs:zho", {}, data, "nya", wanted)


def test_a_small_source_gives_what_it_has():
    data = pack(train=3)
    assert len(replay_texts("pairs", {}, data, "nya", 10**9)) == 3


def test_file_and_registered_source_and_unknown_name(tmp_path):
    import importlib

    install_toy_registry().add_plugin(importlib.import_module("lowres_adapters.builtin.data_sources"))
    corpus = tmp_path / "general.txt"
    corpus.write_text("\n".join(ENGLISH) + "\n", encoding="utf-8")
    from_file = replay_texts(str(corpus), {}, pack(), "nya", 100)
    assert [e.text for e in from_file] == ENGLISH[: len(from_file)] and 100 <= sum(len(e.text) for e in from_file) < 140
    from_source = replay_texts("text", {"path": str(corpus), "lang": "eng"}, pack(), "nya", 100)
    assert [e.text for e in from_source] == [e.text for e in from_file]
    with pytest.raises(LowresError, match="replay_source 'nosuch.txt': expected 'pairs'") as caught:
        replay_texts("nosuch.txt", {}, pack(), "nya", 100)
    assert "\n" not in str(caught.value)
    with pytest.raises(LowresError, match="yields pairs; replay needs a source yielding text"):
        replay_texts("parallel", {"path": str(corpus)}, pack(), "nya", 100)


def test_interleave_spreads_replayed_texts_and_keeps_every_text():
    target = [TextExample(f"n{i}", f"n{i}", "nya") for i in range(8)]
    replayed = [TextExample(f"e{i}", f"e{i}", "eng") for i in range(2)]
    merged = [e.text for e in interleave(target, replayed)]
    assert merged == ["n0", "n1", "e0", "n2", "n3", "n4", "n5", "e1", "n6", "n7"]
    assert interleave(target, []) == target


def context_for(options: CptOptions, data: PackData) -> SimpleNamespace:
    return SimpleNamespace(options=options, data=data, language="nya", state={},
                           settings=SimpleNamespace(data=SimpleNamespace(max_train_examples=None)),
                           loop=SimpleNamespace(eval_every=0))


def test_cpt_training_texts_hold_the_share_and_validation_stays_target_only():
    data = pack()
    train, _ = CptRecipe().training_texts(context_for(CptOptions(replay_share=0.2), data))
    english = sum(len(e.text) for e in train if e.lang == "eng")
    share = english / sum(len(e.text) for e in train)
    assert 0.17 < share < 0.23
    plain, _ = CptRecipe().training_texts(context_for(CptOptions(replay_share=0.0), data))
    assert plain == data.text["train"]


def test_default_pairs_replay_without_pairs_is_off_but_an_explicit_language_is_an_error():
    data = PackData(text=pack().text)
    train, _ = CptRecipe().training_texts(context_for(CptOptions(), data))
    assert train == data.text["train"]
    with pytest.raises(LowresError, match="no training pairs"):
        CptRecipe().training_texts(context_for(CptOptions(replay_source="pairs:eng"), data))


def test_cpt_sft_passes_the_replay_options_to_its_cpt_stage():
    options = CptSftOptions(replay_share=0.3, replay_source="pairs:eng")
    (name, _, _, cpt_options), _ = CptSftRecipe().stages(options)
    assert name == "cpt" and cpt_options["replay_share"] == 0.3 and cpt_options["replay_source"] == "pairs:eng"
    with pytest.raises(ValueError, match="replay_share"):
        CptSftOptions(replay_share=1.5)


@pytest.fixture
def files(tmp_path):
    return dict(tiny_run_files(tmp_path), adapter="toy", progress=False, lr=1e-2), tmp_path


def test_cpt_run_trains_on_more_texts_with_replay(files):
    common, tmp = files

    def examples(share: float) -> int:
        output = tmp / f"cpt{share}"
        adapt("nya", recipe="cpt", max_steps=2, output=str(output), recipe_options={"replay_share": share},
              loop={"token_cache": False, "packing": False}, **common)
        return json.loads((output / "train_log.jsonl").read_text().splitlines()[0])["train_examples"]

    assert examples(0.5) > examples(0.0)


def test_bad_replay_source_fails_before_training_in_one_line(files):
    common, tmp = files
    with pytest.raises(LowresError, match="replay_source 'missing.txt'") as caught:
        adapt("nya", recipe="cpt", max_steps=2, output=str(tmp / "bad"),
              recipe_options={"replay_source": "missing.txt"}, **common)
    assert "\n" not in str(caught.value)
    assert not (tmp / "bad" / "metrics.json").exists()
