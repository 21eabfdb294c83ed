"""Packing: rows are full, and every example's logits and loss equal its unpacked ones."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.fast_lm import causal_lm_loss, masked_lm_loss
from lowres_adapters.training.lm_objectives import CAUSAL_LM, MASKED_LM
from lowres_adapters.training.packing import PackedCollator, pack_features, packing_efficiency

ROW = 48
MODEL_ROW = 128  # the tiny tokenizer gives 5-70 tokens per text


def _features(tokenizer, kind: str) -> list[dict[str, list[int]]]:
    texts = list(TINY_CORPUS) + ["Ndipo Mulungu anati, Kukhale kuwala; ndipo kunali kuwala.", "Amen."]
    if kind == "llama":
        return [{"input_ids": [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]}
                for text in texts]
    return [{"input_ids": tokenizer(text)["input_ids"]} for text in texts]


def _logits(model, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def test_packing_keeps_every_token_once_and_fills_rows():
    features = [{"input_ids": list(range(length))} for length in (30, 20, 18, 10, 9, 5, 40, 47)]
    rows = pack_features(features, row_length=ROW)
    assert all(len(row["input_ids"]) <= ROW for row in rows)
    assert all(sum(row["segment_lengths"]) == len(row["input_ids"]) for row in rows)
    assert sorted(length for row in rows for length in row["segment_lengths"]) == sorted(
        len(feature["input_ids"]) for feature in features)
    assert len(rows) == 4  # 179 tokens need at least 4 rows of 48
    assert packing_efficiency(rows, ROW) > packing_efficiency(features, ROW)
    assert pack_features(features, ROW) == rows  # deterministic


def test_long_features_are_split_and_labels_travel_with_their_tokens():
    feature = {"input_ids": list(range(100)), "labels": [-100] * 50 + list(range(50, 100))}
    rows = pack_features([feature], row_length=ROW)
    assert [len(row["input_ids"]) for row in rows] == [48, 48, 4]
    joined_ids = [token for row in rows for token in row["input_ids"]]
    joined_labels = [label for row in rows for label in row["labels"]]
    assert sorted(joined_ids) == feature["input_ids"]
    assert sorted(zip(joined_ids, joined_labels)) == list(zip(feature["input_ids"], feature["labels"]))
    with pytest.raises(LowresError):
        pack_features([feature], row_length=1)


@pytest.mark.parametrize("kind", ["llama", "xlmr", "bert"])
def test_each_packed_example_has_its_unpacked_logits(kind):
    model, tokenizer = tiny_model(kind)
    features = _features(tokenizer, kind)
    rows = pack_features(features, MODEL_ROW)
    assert len(rows) < len(features)
    objective = CAUSAL_LM if kind == "llama" else MASKED_LM
    collator = PackedCollator.for_model(objective, model, tokenizer, row_length=MODEL_ROW)
    collator.probability = 1e-9  # keep the inputs unmasked to compare logits
    batch = collator(rows, torch.Generator().manual_seed(0))
    inputs = {key: batch[key] for key in ("input_ids", "position_ids", "attention_mask") if key in batch}
    if kind == "llama":
        inputs["use_cache"] = False  # a cache hides the example boundaries from the decoder
    packed = _logits(model, **inputs)  # (rows, MODEL_ROW, vocab)
    by_ids = {tuple(feature["input_ids"]): feature for feature in features}
    checked = 0
    for row_index, row in enumerate(rows):
        start = 0
        for length in row["segment_lengths"]:
            ids = tuple(row["input_ids"][start:start + length])
            assert ids in by_ids
            alone = _logits(model, input_ids=torch.tensor([ids]))[0]  # (length, vocab)
            torch.testing.assert_close(packed[row_index, start:start + length], alone, rtol=1e-4, atol=1e-5)
            start += length
            checked += 1
    assert checked == len(features)


def test_packed_causal_loss_equals_the_token_weighted_unpacked_loss():
    model, tokenizer = tiny_model("llama")
    features = _features(tokenizer, "llama")
    batch = PackedCollator.for_model(CAUSAL_LM, model, tokenizer, row_length=MODEL_ROW)(
        pack_features(features, MODEL_ROW), torch.Generator())
    packed_loss, packed_count = causal_lm_loss(model, batch)
    total, count = 0.0, 0
    for feature in features:
        ids = torch.tensor([feature["input_ids"]])
        loss, n = causal_lm_loss(model, {"input_ids": ids, "labels": ids})
        total += float(loss.detach()) * n
        count += n
    assert packed_count == count == sum(len(feature["input_ids"]) - 1 for feature in features)
    assert abs(float(packed_loss.detach()) - total / count) < 1e-5


def test_packed_masked_lm_masks_only_real_tokens_and_trains():
    model, tokenizer = tiny_model("xlmr")
    rows = pack_features(_features(tokenizer, "xlmr"), MODEL_ROW)
    collator = PackedCollator.for_model(MASKED_LM, model, tokenizer, row_length=MODEL_ROW)
    batch = collator(rows, torch.Generator().manual_seed(3))
    labelled = batch["labels"] != -100
    special = torch.isin(batch["labels"], torch.tensor(tokenizer.all_special_ids))
    assert labelled.any() and not (labelled & (batch["token_mask"] == 0)).any() and not (labelled & special).any()
    assert batch["attention_mask"].shape == (len(rows), MODEL_ROW, MODEL_ROW)
    again = collator(rows, torch.Generator().manual_seed(3))
    assert torch.equal(again["labels"], batch["labels"])  # the generator decides the masks
    loss, count = masked_lm_loss(model, batch)
    assert count == int(labelled.sum()) and torch.isfinite(loss)
