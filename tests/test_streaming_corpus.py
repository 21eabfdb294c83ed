"""Corpora bigger than memory: the streamed token cache gives the eager features row by row, is reused,
invalidated by a changed file, rebuilt when damaged, and trains (and resumes) to the same weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lowres_adapters.training.token_store import PackedCacheFeatures, TokenCacheFeatures, stream_token_cache
from lowres_adapters.data.text import read_text_file
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model, tiny_tokenizer
from lowres_adapters.training.batching import CausalCollator, tokenize_for_clm, tokenize_for_mlm
from lowres_adapters.training.loop import TrainingJob, select_parameters, train
from lowres_adapters.training.loop_settings import SpeedSettings
from lowres_adapters.training.objectives import causal_lm_loss
from lowres_adapters.training.packing import examples_in, pack_features
from lowres_adapters.training.settings import LoopSettings
from lowres_adapters.training.speed import speed_up_job


def write_corpus(path, repeat=3):
    long_text = " ".join(TINY_CORPUS)  # longer than a row: split into row-sized pieces when packed
    lines = [*TINY_CORPUS, "", "   ", long_text] * repeat
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def eager(path, tokenize, max_length):
    return tokenize(tiny_tokenizer(), [example.text for example in read_text_file(path, "nya")], max_length)


@pytest.mark.parametrize("tokenize", [tokenize_for_clm, tokenize_for_mlm])
def test_lazy_features_equal_the_eager_ones_packed_and_unpacked(tmp_path, tokenize):
    corpus = write_corpus(tmp_path / "corpus.txt")
    features, from_cache = stream_token_cache(corpus, tiny_tokenizer(), tokenize, 48, root=tmp_path / "cache")
    expected = eager(corpus, tokenize, 48)
    assert not from_cache and isinstance(features, TokenCacheFeatures)
    assert len(features) == len(expected) and [features[i] for i in range(len(features))] == expected
    assert features[-1] == expected[-1]
    assert any(len(feature["input_ids"]) > 16 for feature in expected)
    for row_length in (16, 48):
        packed = features.packed(row_length)
        eager_packed = pack_features(expected, row_length)
        assert [packed[i] for i in range(len(packed))] == eager_packed
        assert examples_in(packed) == examples_in(eager_packed)
    with pytest.raises(IndexError):
        features[len(features)]


def test_cache_is_reused_and_a_changed_file_is_tokenised_again(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    tokenizer, root = tiny_tokenizer(), tmp_path / "cache"
    first, _ = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 32, root=root)
    again, from_cache = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 32, root=root)
    assert from_cache and list(again) == list(first)
    assert isinstance(again.ids, np.memmap)  # memory-mapped, not read into memory
    shorter, from_cache = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 8, root=root)
    assert not from_cache and max(len(f["input_ids"]) for f in shorter) == 8  # max_length is part of the key
    with corpus.open("a", encoding="utf-8") as handle:
        handle.write("Mawu atsopano.\n")
    changed, from_cache = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 32, root=root)
    assert not from_cache and len(changed) == len(first) + 1
    assert changed[-1] == eager(corpus, tokenize_for_clm, 32)[-1]


def test_a_damaged_entry_is_rebuilt_with_a_note(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    tokenizer, root = tiny_tokenizer(), tmp_path / "cache"
    first = list(stream_token_cache(corpus, tokenizer, tokenize_for_clm, 32, root=root)[0])
    (ids_file,) = root.glob("*/ids.bin")
    ids_file.write_bytes(ids_file.read_bytes()[:-4])  # a truncated copy
    rebuilt, from_cache = stream_token_cache(corpus, tokenizer, tokenize_for_clm, 32, root=root)
    assert not from_cache and list(rebuilt) == first
    assert "damaged; tokenising again" in capsys.readouterr().err


def test_an_iterable_source_needs_a_key_and_gives_the_file_features(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    texts = [example.text for example in read_text_file(corpus, "nya")]
    with pytest.raises(ValueError, match="source_key"):
        stream_token_cache(iter(texts), tiny_tokenizer(), tokenize_for_clm, 32, root=tmp_path)
    features, _ = stream_token_cache(iter(texts), tiny_tokenizer(), tokenize_for_clm, 32, source_key="tiny:v1",
                                     root=tmp_path)
    assert list(features) == eager(corpus, tokenize_for_clm, 32)


def packed_job(features, dropout: float = 0.2) -> TrainingJob:
    model, tokenizer = tiny_model("llama", attention_dropout=dropout)
    job = TrainingJob(model=model, parameters=select_parameters(model, ("*q_proj*", "*down_proj*")),
                      train_features=features, collate=CausalCollator(tokenizer.pad_token_id), loss_fn=causal_lm_loss)
    options = SpeedSettings(packing=True, masked_only_logits=True, vocab_trim=True, trim_negatives=8)
    return speed_up_job(job, options, objective="clm", tokenizer=tokenizer, row_length=32)


def test_training_on_the_lazy_features_and_resuming_mid_corpus_give_the_eager_weights(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", repeat=6)
    lazy, _ = stream_token_cache(corpus, tiny_tokenizer(), tokenize_for_clm, 32, root=tmp_path / "cache")
    settings = LoopSettings(max_steps=6, lr=1e-2, batch_size=2, progress=False, seed=3)
    reference = packed_job(eager(corpus, tokenize_for_clm, 32))
    train(reference, settings, tmp_path / "reference")

    crashed = packed_job(lazy)
    assert isinstance(crashed.train_features, PackedCacheFeatures)

    def crash(report):
        if report.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(crashed, dataclasses.replace(settings, save_every=3), tmp_path / "run", callbacks=[crash])
    resumed = packed_job(lazy)  # a fresh process: base weights, the same cache entry
    result = train(resumed, dataclasses.replace(settings, save_every=3), tmp_path / "run", resume=True)
    assert result.resumed_from == 3 and result.steps == 6
    for name, parameter in reference.parameters.items():
        assert torch.equal(parameter, resumed.parameters[name]), name


def test_the_recorded_vocabulary_is_the_scanned_one_and_a_view_keeps_its_examples(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    features, _ = stream_token_cache(corpus, tiny_tokenizer(), tokenize_for_clm, 32, root=tmp_path / "cache")
    scanned = TokenCacheFeatures(features.ids, features.offsets)  # no recorded vocabulary: scans the ids
    assert features.unique_ids().tolist() == scanned.unique_ids(chunk_tokens=7).tolist()
    assert set(features.unique_ids().tolist()) == {token for feature in features for token in feature["input_ids"]}
    tail = features.select(len(features) - 3, len(features))
    assert list(tail) == [features[i] for i in range(len(features) - 3, len(features))]
    assert list(features.select(0, 2)) == [features[0], features[1]] and len(features.select(5, 2)) == 0


def test_the_packing_plan_is_kept_in_the_entry_and_memory_mapped_by_later_runs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    root = tmp_path / "cache"
    features, _ = stream_token_cache(corpus, tiny_tokenizer(), tokenize_for_clm, 48, root=root)
    first = features.packed(16)
    again, from_cache = stream_token_cache(corpus, tiny_tokenizer(), tokenize_for_clm, 48, root=root)
    assert from_cache and isinstance(again.offsets, np.memmap)
    later = again.packed(16)
    assert isinstance(later._pieces, np.memmap) and len(later) == len(first)
    assert [later[i] for i in range(len(later))] == [first[i] for i in range(len(first))]
    assert [later[i] for i in range(len(later))] == pack_features(list(again), 16)
    tail = again.select(3, len(again)).packed(16)  # a view has its own plan
    assert [tail[i] for i in range(len(tail))] == pack_features([again[i] for i in range(3, len(again))], 16)


def test_a_killed_pass_leaves_no_entry_and_a_later_pass_removes_its_staging_folder(tmp_path, capsys):
    import os

    from lowres_adapters.training.token_store import cache_entry

    corpus = write_corpus(tmp_path / "corpus.txt")
    root = tmp_path / "cache"
    entry, _, _ = cache_entry(corpus, tiny_tokenizer(), tokenize_for_clm, 32, root=root)
    abandoned, live = root / f".{entry.name}.killed.tmp", root / f".{entry.name}.running.tmp"
    for staging in (abandoned, live):
        staging.mkdir(parents=True)
        (staging / "ids.bin").write_bytes(b"\0" * 8)
    os.utime(abandoned / "ids.bin", (0, 0))  # untouched for long: its process is gone
    features, from_cache = stream_token_cache(corpus, tiny_tokenizer(), tokenize_for_clm, 32, root=root)
    assert not from_cache and len(features) and not abandoned.exists() and live.exists()
    assert "an interrupted tokenising pass" in capsys.readouterr().err


def test_batched_encoding_gives_the_tokenizers_own_ids_even_after_a_truncating_call():
    from lowres_adapters.training.batching import encode_batch

    tokenizer, texts = tiny_tokenizer(), [*TINY_CORPUS, "ŵ ndi ŋ, <s> 12"]
    expected = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert encode_batch(tokenizer, texts) == expected
    tokenizer(texts, truncation=True, max_length=3)  # leaves truncation set on the backend tokenizer
    assert tokenizer.backend_tokenizer.truncation is not None
    assert encode_batch(tokenizer, texts) == expected
