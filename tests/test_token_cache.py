"""The token cache returns what tokenising returns, and tokenises each corpus only once."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lowres_adapters.data.token_cache import cached_features, cached_token_ids, corpus_key
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_tokenizer
from lowres_adapters.training.batching import tokenize_for_clm, tokenize_for_mlm


def test_cached_ids_equal_fresh_tokenisation_and_are_memory_mapped(tmp_path):
    tokenizer = tiny_tokenizer()
    calls = []

    def tokenize(texts):
        calls.append(len(texts))
        return tokenizer(list(texts))["input_ids"]

    first = cached_token_ids(TINY_CORPUS, tokenizer, tokenize=tokenize, root=tmp_path)
    second = cached_token_ids(TINY_CORPUS, tokenizer, tokenize=tokenize, root=tmp_path)
    assert calls == [len(TINY_CORPUS)]  # the second call read the cache
    assert not first.from_cache and second.from_cache
    assert isinstance(second.ids, np.memmap)
    expected = tokenizer(list(TINY_CORPUS))["input_ids"]
    assert [second[i].tolist() for i in range(len(second))] == expected
    assert second.lengths().tolist() == [len(ids) for ids in expected]
    assert not list(tmp_path.glob(".tokens-*"))  # no staging folder left behind


def test_key_changes_with_texts_tokenizer_and_variant():
    tokenizer = tiny_tokenizer()
    base = corpus_key(tokenizer, TINY_CORPUS, "plain")
    # the cache outlives the process: another process (another hash seed, another tokenizer object) finds it
    code = ("from lowres_adapters.data.token_cache import corpus_key; "
            "from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_tokenizer; "
            "print(corpus_key(tiny_tokenizer(), TINY_CORPUS, 'plain'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "4321"})
    assert done.stdout.strip() == base
    extended = tiny_tokenizer()
    extended.add_tokens(["kuwala"])
    assert corpus_key(extended, TINY_CORPUS, "plain") != base
    assert corpus_key(tokenizer, TINY_CORPUS[:-1], "plain") != base
    assert corpus_key(tokenizer, ("ab", "c"), "plain") != corpus_key(tokenizer, ("a", "bc"), "plain")
    assert corpus_key(tokenizer, TINY_CORPUS, "clm:128") != base
    assert corpus_key(tiny_tokenizer(vocab_size=300), TINY_CORPUS, "plain") != base


@pytest.mark.parametrize("tokenize_features", [tokenize_for_clm, tokenize_for_mlm])
def test_cached_features_equal_the_loop_tokenisers(tmp_path, tokenize_features):
    tokenizer = tiny_tokenizer()
    texts = list(TINY_CORPUS) + ["   ", "Amen."]  # the blank text is skipped, as the tokeniser does
    expected = tokenize_features(tokenizer, texts, 16)
    assert cached_features(texts, tokenizer, tokenize_features, 16, root=tmp_path) == expected
    assert cached_features(texts, tokenizer, tokenize_features, 16, root=tmp_path) == expected
    assert cached_features(texts, tokenizer, tokenize_features, 8, root=tmp_path) == tokenize_features(
        tokenizer, texts, 8)


def test_damaged_entry_is_a_one_line_error(tmp_path):
    tokenizer = tiny_tokenizer()
    corpus = cached_token_ids(TINY_CORPUS, tokenizer, root=tmp_path)
    (tmp_path / corpus.key / "offsets.npy").write_bytes(b"junk")
    with pytest.raises(LowresError, match="damaged"):
        cached_token_ids(TINY_CORPUS, tokenizer, root=tmp_path)
