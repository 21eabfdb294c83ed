"""Tokenise examples into features and collate features into dynamically padded batches.

A *feature* is a dict ``{"input_ids": list[int]}``, optionally with ``"labels": list[int]`` of the
same length (-100 where nothing is predicted, e.g. the prompt in answer-only SFT). A *collator*
is ``collate(features, generator) -> batch``; the generator is seeded by the loop from the run
seed and the step, so random choices in a collator (MLM masks) are reproducible and resumable.
Batches are padded to the longest feature of the batch, not to ``max_length``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence, overload

import torch

from lowres_adapters.training.objectives import IGNORE_INDEX, MASK_PROBABILITY, mask_tokens

Feature = dict[str, list[int]]
Batch = dict[str, torch.Tensor]
Collator = Callable[[Sequence[Mapping[str, Any]], torch.Generator], Batch]


def tokenize_for_clm(tokenizer: Any, texts: Iterable[str], max_length: int) -> list[Feature]:
    """Tokenise texts for causal LM: BOS (when the tokenizer has one) + text + EOS, truncated.

    Empty texts are skipped. The BOS token lets the model predict the first real token, as the
    bits-per-character evaluation does.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    kept = [text for text in texts if text.strip()]
    if not kept:
        return []
    encoded = encode_batch(tokenizer, kept)
    return [{"input_ids": (bos + list(ids) + eos)[:max_length]} for ids in encoded]


def encode_batch(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Return the ids of ``texts`` without special tokens, in one batched call.

    A fast tokenizer's backend is called directly (``encode_batch_fast``: no offsets, no
    ``BatchEncoding``), unless a truncation or padding setting is left on it, which the
    tokenizer's own call would reset; the ids are the same either way.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if (backend is not None and hasattr(backend, "encode_batch_fast")
            and backend.truncation is None and backend.padding is None):
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def tokenize_for_mlm(tokenizer: Any, texts: Iterable[str], max_length: int) -> list[Feature]:
    """Tokenise texts for masked LM with the tokenizer's own special tokens (CLS/SEP), truncated."""
    features = []
    for text in texts:
        if not text.strip():
            continue
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        features.append({"input_ids": list(ids)})
    return features


def tokenize_prompt_answer(tokenizer: Any, prompt: str, answer: str, max_length: int) -> Feature:
    """Tokenise an SFT example: labels cover the answer (+ EOS) only, never the prompt.

    When the example is too long the prompt is cut from the left, so the answer is kept.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    prompt_ids = bos + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + eos
    answer_ids = answer_ids[: max_length - 1]
    prompt_ids = prompt_ids[-(max_length - len(answer_ids)):]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    return {"input_ids": input_ids, "labels": labels}


def pad_features(features: Sequence[Mapping[str, Any]], pad_token_id: int) -> Batch:
    """Pad features on the right to the longest one.

    Returns:
        ``input_ids``, ``attention_mask`` and ``labels``, each (batch, longest); labels are the
        features' labels (or their input ids) with -100 on padding.
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    longest = max(len(feature["input_ids"]) for feature in features)
    input_ids = torch.full((len(features), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
    labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
    for row, feature in enumerate(features):
        ids = feature["input_ids"]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
        labels[row, : len(ids)] = torch.tensor(feature.get("labels", ids), dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class CausalCollator:
    """Collate causal-LM (or answer-only SFT) features with dynamic padding.

    Args:
        pad_token_id: Id used for padding (masked out of attention and loss).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[Mapping[str, Any]], generator: torch.Generator) -> Batch:
        """Return the padded batch (the generator is unused: nothing random here)."""
        return pad_features(features, self.pad_token_id)


class MaskedCollator:
    """Collate masked-LM features: pad dynamically, then mask 15% (80/10/10) of real tokens.

    Args:
        tokenizer: Supplies the pad and mask ids, the vocabulary size and the special-token ids.
        probability: Share of real tokens to predict.
    """

    def __init__(self, tokenizer: Any, probability: float = MASK_PROBABILITY) -> None:
        if tokenizer.mask_token_id is None:
            raise ValueError("masked LM needs a tokenizer with a mask token")
        self.pad_token_id = tokenizer.pad_token_id
        self.mask_token_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.probability = probability

    def __call__(self, features: Sequence[Mapping[str, Any]], generator: torch.Generator) -> Batch:
        """Return the padded batch with masked ``input_ids`` and ``labels`` on the chosen positions."""
        batch = pad_features(features, self.pad_token_id)
        never_masked = torch.isin(batch["input_ids"], self.special_ids) | (batch["attention_mask"] == 0)
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], never_masked, mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size, generator=generator, probability=self.probability,
        )
        return batch


class LazyFeatures(Sequence[Feature]):
    """Features tokenised on first access (a 40-step run reads 320 of 20,000 texts).

    Args:
        texts: The non-empty texts, in order.
        tokenize: ``tokenize(texts) -> features`` for a list of texts (one feature per text).
    """

    def __init__(self, texts: Sequence[str], tokenize: Callable[[list[str]], list[Feature]]) -> None:
        self._texts = [text for text in texts if text.strip()]
        self._tokenize = tokenize
        self._cache: dict[int, Feature] = {}

    def __len__(self) -> int:
        return len(self._texts)

    @overload
    def __getitem__(self, index: int) -> Feature: ...

    @overload
    def __getitem__(self, index: slice) -> list[Feature]: ...

    def __getitem__(self, index: int | slice) -> Feature | list[Feature]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index not in self._cache:
            self._cache[index] = self._tokenize([self._texts[index]])[0]
        return self._cache[index]
