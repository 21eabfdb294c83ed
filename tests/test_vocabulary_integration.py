"""Integration: vocabulary extension with SmolLM2's real tokenizer on real Dzongkha (needs `lowres data fetch dzo`)."""

from __future__ import annotations

import pytest
import torch


def _fetched(code: str) -> bool:
    from lowres_adapters.data.cache import read_manifest
    from lowres_adapters.paths import data_dir

    return read_manifest(data_dir(code)) is not None


@pytest.mark.integration
@pytest.mark.skipif(not _fetched("dzo"), reason="run `lowres data fetch dzo` (make data) first")
def test_tibetan_tokens_per_character_drop_and_english_is_untouched():
    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.models import DEFAULT_MODEL, load_base_model
    from lowres_adapters.training.vocabulary import extend_vocabulary, tokens_per_character

    data = load_pack_data("dzo")
    train = [example.text for example in data.text["train"]][:4000]
    held_out = [example.text for example in data.text["test"]][:300]
    model, tokenizer = load_base_model(DEFAULT_MODEL)
    before = tokens_per_character(tokenizer, held_out)
    assert 2.0 < before < 2.6  # SmolLM2 spends about 2.3 tokens per Tibetan character
    english = "Select the cells, then choose Format - Cells and click OK."
    with torch.no_grad():
        english_logits = model(**tokenizer(english, return_tensors="pt")).logits
    extended = extend_vocabulary(model, tokenizer, train, 500)
    after = tokens_per_character(extended.tokenizer, held_out)
    assert after < 0.5 * before
    assert extended.tokenizer(english)["input_ids"] == tokenizer(english)["input_ids"]
    with torch.no_grad():
        batch = extended.tokenizer(english, return_tensors="pt")
        logits = model(**batch).logits  # (1, seq, 49152 + 500)
        assert logits.shape[-1] == len(tokenizer) + 500
        torch.testing.assert_close(logits[..., : len(tokenizer)], english_logits)
        tibetan = extended.tokenizer(held_out[:2], return_tensors="pt", padding=True)
        assert torch.isfinite(model(**tibetan).logits).all()
