"""Real model, real pairs: a pooled adapter trained with InfoNCE on 300 Chichewa-English training pairs
lifts held-out English -> Chichewa retrieval to at least twice the base model's and five times chance
(direction only; benchmarks/transfer.py has the curve)."""

from __future__ import annotations

import random

import pytest

pytestmark = pytest.mark.integration

TRAIN_PAIRS = 300
HELD_OUT_PAIRS = 100
LAYER = 15


def test_infonce_pooled_adapter_lifts_held_out_retrieval():
    import torch

    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.errors import LowresError
    from lowres_adapters.evaluation.retrieval import pooled_features, top1_accuracy
    from lowres_adapters.models import load_base_model
    from lowres_adapters.training.pooled_alignment import train_pooled_adapter

    try:
        data = load_pack_data("nya")
    except LowresError:
        pytest.skip("the nya pack is not fetched (make data)")
    train = random.Random(0).sample(list(data.pairs["train"]), TRAIN_PAIRS)
    held = random.Random(0).sample(list(data.pairs["test"]), HELD_OUT_PAIRS)
    model, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")

    def vectors(texts):
        return pooled_features(model, tokenizer, texts, layers=[LAYER], skip_first=1, max_length=48)[LAYER]

    train_eng, train_nya = vectors([p.source for p in train]), vectors([p.target for p in train])
    held_eng, held_nya = vectors([p.source for p in held]), vectors([p.target for p in held])
    before = top1_accuracy(held_eng, held_nya)
    adapter = train_pooled_adapter(train_nya, train_eng, "infonce", {"temperature": 0.05}, seed=0)
    with torch.no_grad():
        after = top1_accuracy(held_eng, adapter(held_nya))
    assert after >= 2 * before and after >= 5 / HELD_OUT_PAIRS
