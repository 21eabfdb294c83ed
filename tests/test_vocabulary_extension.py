"""Vocabulary extension on tiny models: new pieces, row initialisation, what trains, save and restore."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lowres_adapters.artifact import (
    NEW_OUTPUT_ROWS_KEY,
    NEW_ROWS_KEY,
    ArtifactMetadata,
    read_tensors,
    write_artifact,
)
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import tiny_model
from lowres_adapters.training.vocabulary import (
    NEW_OUTPUT_BIAS_KEY,
    extend_model,
    extend_tokenizer,
    extend_vocabulary,
    restore_extended_vocabulary,
    tokens_per_character,
)
from lowres_adapters.training.vocabulary_tokenizer import dominant_script_range, old_subtoken_ids

CONSONANTS = "ཀཁགངཅཆཇཉཏཐདནཔཕབམཙཚཛཝཞཟའཡརལཤསཧཨ"
VOWELS = ("", "ི", "ུ", "ེ", "ོ")
ENGLISH = "In the beginning God created the heaven and the earth."


def tibetan_like_text(lines: int = 300, seed: int = 0) -> list[str]:
    """Return lines of Tibetan-script syllables drawn from a small Zipf-like lexicon (made here, not real)."""
    rng = random.Random(seed)
    syllables = [rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(["", "ས", "ན", "ག"]) for _ in range(60)]
    words = ["་".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(120)]
    weights = [1 / (rank + 1) for rank in range(len(words))]
    return ["་".join(rng.choices(words, weights=weights, k=rng.randint(4, 12))) + "།" for _ in range(lines)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return tibetan_like_text()


def test_dominant_script_is_found(texts):
    first, last = dominant_script_range(texts + [ENGLISH])
    assert 0x0F00 <= first <= last <= 0x0FFF
    assert dominant_script_range([ENGLISH, "Mulungu ndiye kuwala"]) is None


def test_tokenizer_extension_lowers_tokens_per_char_and_keeps_english(texts):
    _, tokenizer = tiny_model("llama")
    extension = extend_tokenizer(tokenizer, texts[:250], 150)
    extended = extension.tokenizer
    assert len(extension.added_pieces) == 150
    assert len(extended) == len(tokenizer) + 150 == extension.original_size + 150
    held_out = texts[250:]
    before, after = tokens_per_character(tokenizer, held_out), tokens_per_character(extended, held_out)
    assert after < 0.5 * before
    assert extended.tokenize(ENGLISH) == tokenizer.tokenize(ENGLISH)
    assert extended(ENGLISH)["input_ids"] == tokenizer(ENGLISH)["input_ids"]
    ids = extended(held_out[0], add_special_tokens=False)["input_ids"]
    assert max(ids) >= len(tokenizer)  # new pieces are used
    assert extended.decode(ids) == held_out[0]


def test_too_few_tokens_requested_is_a_user_error(texts):
    _, tokenizer = tiny_model("llama")
    with pytest.raises(LowresError, match="positive integer"):
        extend_tokenizer(tokenizer, texts, 0)
    with pytest.raises(LowresError, match="needs training text"):
        extend_tokenizer(tokenizer, ["", "  "], 10)


def test_new_rows_start_as_the_mean_of_old_subtoken_rows(texts):
    model, tokenizer = tiny_model("llama")
    old_embeddings = model.get_input_embeddings().weight.detach().clone()
    extended = extend_vocabulary(model, tokenizer, texts, 40)
    pieces = [piece for piece, index in sorted(extended.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
              if index >= extended.original_size]
    groups = old_subtoken_ids(tokenizer, pieces)
    assert all(len(group) >= 2 for group in groups)  # every new piece was several old tokens
    for row in (0, 17, 39):
        expected = old_embeddings[groups[row]].mean(dim=0)
        torch.testing.assert_close(extended.new_rows[row].detach(), expected)


@pytest.mark.parametrize("kind", ["llama", "xlmr", "bert"])
def test_extended_model_scores_the_new_vocabulary_and_keeps_old_outputs(kind, texts):
    model, tokenizer = tiny_model(kind)
    batch = tokenizer([ENGLISH], return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).logits  # (1, seq, vocab)
    extended = extend_vocabulary(model, tokenizer, texts, 30)
    assert model.config.vocab_size == len(tokenizer) + 30
    with torch.no_grad():
        after = model(**batch).logits  # (1, seq, vocab + 30)
    assert after.shape[-1] == len(tokenizer) + 30
    torch.testing.assert_close(after[..., : len(tokenizer)], before)  # old ids, old logits
    new_batch = extended.tokenizer(texts[:2], return_tensors="pt", padding=True)
    assert int(new_batch["input_ids"].max()) >= len(tokenizer)
    model(**new_batch)  # new ids embed without index errors


def test_only_new_rows_train_and_old_weights_stay(texts):
    model, tokenizer = tiny_model("llama")
    extended = extend_vocabulary(model, tokenizer, texts, 30)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    extended.enable_training()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0] is extended.new_rows  # tied head: one shared parameter
    frozen_before = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    rows_before = extended.new_rows.detach().clone()
    batch = extended.tokenizer(texts[:4], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(trainable, lr=0.05, weight_decay=0.1)
    for _ in range(3):
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not torch.equal(extended.new_rows.detach(), rows_before)
    for name, parameter in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(parameter.detach(), frozen_before[name]), name


class RowsOnlyHandle:
    """The smallest AttachedAdapter: a bias vector on the final norm (enough to write an artifact)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.name, self.config, self.model = "tiny", None, model
        self.vector = torch.nn.Parameter(torch.zeros(model.config.hidden_size))

    def activate(self) -> None:
        """Nothing to select."""

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        return {"vector": self.vector}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {"vector": self.vector.detach()}

    def load_adapter_state_dict(self, tensors) -> None:
        self.vector.data.copy_(tensors["vector"])

    def save_native(self, directory: Path) -> list[str]:
        return []


@pytest.mark.parametrize("kind,overrides", [("llama", {}), ("llama", {"tie_word_embeddings": False}),
                                             ("xlmr", {})])
def test_artifact_holds_only_new_rows_and_restores_the_same_model(tmp_path, texts, kind, overrides):
    model, tokenizer = tiny_model(kind, **overrides)
    extended = extend_vocabulary(model, tokenizer, texts, 25)
    with torch.no_grad():
        extended.new_rows.add_(0.5)  # pretend training moved them
        if extended.new_output_rows is not None:
            extended.new_output_rows.sub_(0.25)
    metadata = ArtifactMetadata(adapter_type="tiny", adapter_name="tiny", adapter_config={}, plugin=None,
                                base_model="tiny", vocabulary=extended.metadata())
    write_artifact(tmp_path, RowsOnlyHandle(model), metadata, extra_tensors=extended.state_tensors(),
                   tokenizer=extended.tokenizer, native=False)
    tensors = read_tensors(tmp_path)
    hidden = model.config.hidden_size
    assert tuple(tensors[NEW_ROWS_KEY].shape) == (25, hidden)
    assert (NEW_OUTPUT_ROWS_KEY in tensors) == bool(overrides)  # only an untied head has rows of its own
    assert (NEW_OUTPUT_BIAS_KEY in tensors) == (kind == "xlmr")
    expected = 25 * hidden * (2 if overrides else 1) + 25 * (kind == "xlmr") + hidden  # + the handle's vector
    assert sum(t.numel() for t in tensors.values()) == expected  # only new rows, never a whole matrix

    fresh, _ = tiny_model(kind, **overrides)
    restored_tokenizer = restore_extended_vocabulary(fresh, tmp_path)
    assert restored_tokenizer.get_vocab() == extended.tokenizer.get_vocab()
    batch = restored_tokenizer(texts[:3], return_tensors="pt", padding=True)
    model.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh(**batch).logits, model(**batch).logits)


def test_restore_without_extension_returns_none_and_mismatch_is_one_line(tmp_path, texts):
    model, _ = tiny_model("llama")
    metadata = ArtifactMetadata(adapter_type="tiny", adapter_name="tiny", adapter_config={}, plugin=None,
                                base_model="tiny")
    write_artifact(tmp_path / "plain", RowsOnlyHandle(model), metadata, native=False)
    assert restore_extended_vocabulary(model, tmp_path / "plain") is None

    extended_model, tokenizer = tiny_model("llama")
    extended = extend_vocabulary(extended_model, tokenizer, texts, 10)
    metadata.vocabulary = extended.metadata()
    write_artifact(tmp_path / "ext", RowsOnlyHandle(extended_model), metadata,
                   extra_tensors=extended.state_tensors(), tokenizer=extended.tokenizer, native=False)
    wider, _ = tiny_model("llama", hidden_size=48, intermediate_size=64)
    with pytest.raises(LowresError, match="expected \\(10, 48\\)"):
        restore_extended_vocabulary(wider, tmp_path / "ext")


def _trained_tokenizer(kind: str, corpus: list[str]):
    """Return a small WordPiece or Unigram fast tokenizer trained here (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "WordPiece":
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=False)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=120, special_tokens=["[PAD]", "[UNK]"], show_progress=False)
        backend.train_from_iterator(corpus, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")


@pytest.mark.parametrize("kind", ["WordPiece", "Unigram"])
def test_wordpiece_and_unigram_vocabularies_extend(kind, texts):
    english = [ENGLISH, "And the earth was without form, and void."] * 20
    base = _trained_tokenizer(kind, english + [CONSONANTS + "".join(VOWELS)])
    extension = extend_tokenizer(base, texts[:250], 60)
    assert len(extension.tokenizer) == len(base) + len(extension.added_pieces) > len(base)
    held_out = texts[250:]
    assert tokens_per_character(extension.tokenizer, held_out) < tokens_per_character(base, held_out)
    assert extension.tokenizer.tokenize(ENGLISH) == base.tokenize(ENGLISH)
    from transformers import BertForMaskedLM

    from lowres_adapters.testing.tiny import tiny_bert_config

    model = BertForMaskedLM(tiny_bert_config(vocab_size=len(base)))
    extended = extend_model(model, extension, base)
    batch = extension.tokenizer(held_out[:2], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape[-1] == len(base) + extended.added_tokens
