"""Turn labelled examples into model inputs for the task heads, and predictions back into answers.

Works with any fast tokenizer: words and answers are located through character offsets
(``return_offsets_mapping``), never through tokenizer-specific word ids, so byte-level BPE
(SmolLM2, RoBERTa) and WordPiece (BERT) behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from lowres_adapters.data.examples import LabeledExample
from lowres_adapters.errors import LowresError
from lowres_adapters.training.heads import IGNORE_INDEX, labelling

QA_SEPARATOR = "\n"
"""Between question and context: the input is ``question + QA_SEPARATOR + context``."""


@dataclass
class EncodedExample:
    """One tokenised example with its targets and what is needed to decode a prediction.

    Attributes:
        input_ids: Token ids.
        targets: ``{"labels": int | list[int]}`` or ``{"start_positions": int, "end_positions": int}``.
        offsets: (start, end) character offsets of each token in ``text``.
        text: The exact string that was tokenised.
        context_start: For QA, the character where the context starts inside ``text``.
        word_starts: For token classification, the index of the first token of each word (-1 if cut off).
    """

    input_ids: list[int]
    targets: dict[str, Any]
    offsets: list[tuple[int, int]]
    text: str
    context_start: int = 0
    word_starts: tuple[int, ...] = ()

    def feature(self) -> dict[str, Any]:
        """Return the loop's feature: ``input_ids`` and the targets."""
        return {"input_ids": self.input_ids, **self.targets}


def _tokenize(tokenizer: Any, text: str, max_length: int) -> tuple[list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise LowresError("task heads need a fast tokenizer (offsets); load it with use_fast=True")
    encoded = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    return list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]


def encode_sequence_example(example: LabeledExample, tokenizer: Any, labels: Sequence[str],
                            max_length: int) -> EncodedExample:
    """Tokenise a text with its class label."""
    if example.label not in labels:
        raise LowresError(f"example {example.id or example.text[:30]!r}: label {example.label!r} is not one of "
                          f"{', '.join(labels)}")
    input_ids, offsets = _tokenize(tokenizer, example.text, max_length)
    return EncodedExample(input_ids, {"labels": labels.index(example.label)}, offsets, example.text)


def encode_token_example(example: LabeledExample, tokenizer: Any, labels: Sequence[str],
                         max_length: int) -> EncodedExample:
    """Tokenise space-joined words; the first token of each word carries its tag, the others -100."""
    if len(example.tokens) != len(example.tags):
        raise LowresError(f"example {example.id!r}: {len(example.tokens)} words but {len(example.tags)} tags")
    unknown = sorted(set(example.tags) - set(labels))
    if unknown:
        raise LowresError(f"example {example.id!r}: tag(s) {', '.join(unknown)} not in {', '.join(labels)}")
    text, word_spans, cursor = "", [], 0
    for index, word in enumerate(example.tokens):
        if index:
            text += " "
            cursor += 1
        word_spans.append((cursor, cursor + len(word)))
        text += word
        cursor += len(word)
    input_ids, offsets = _tokenize(tokenizer, text, max_length)
    token_labels = [IGNORE_INDEX] * len(input_ids)
    word_starts = []
    for (word_start, word_end), tag in zip(word_spans, example.tags):
        first = next((position for position, (start, end) in enumerate(offsets)
                      if end > start and end > word_start and start < word_end), -1)
        word_starts.append(first)
        if first >= 0:
            token_labels[first] = labels.index(tag)
    return EncodedExample(input_ids, {"labels": token_labels}, offsets, text, word_starts=tuple(word_starts))


def encode_qa_example(example: LabeledExample, tokenizer: Any, max_length: int) -> EncodedExample:
    """Tokenise ``question + separator + context`` and mark the first gold answer's token span.

    When the answer is not in the context or was truncated away, both positions are 0 (the
    SQuAD v2 convention for "no answer"); the recipe drops such examples from training.
    """
    text = example.question + QA_SEPARATOR + example.text
    context_start = len(example.question) + len(QA_SEPARATOR)
    input_ids, offsets = _tokenize(tokenizer, text, max_length)
    start_position = end_position = 0
    answer = example.answers[0] if example.answers else ""
    answer_at = example.text.find(answer) if answer else -1
    if answer_at >= 0:
        answer_start = context_start + answer_at
        answer_end = answer_start + len(answer)
        covering = [position for position, (start, end) in enumerate(offsets)
                    if end > start and start >= context_start and end > answer_start and start < answer_end]
        if covering and offsets[covering[-1]][1] >= answer_end:
            start_position, end_position = covering[0], covering[-1]
    targets = {"start_positions": start_position, "end_positions": end_position}
    return EncodedExample(input_ids, targets, offsets, text, context_start=context_start)


def encode_examples(kind: str, examples: Sequence[LabeledExample], tokenizer: Any, labels: Sequence[str],
                    max_length: int = 256) -> list[EncodedExample]:
    """Encode ``examples`` for a head of ``kind``."""
    try:
        what = labelling(kind)
    except ValueError as error:
        raise LowresError(f"unknown task kind {kind!r}: {error}") from None
    if what == "one":
        return [encode_sequence_example(e, tokenizer, labels, max_length) for e in examples]
    if what == "per_token":
        return [encode_token_example(e, tokenizer, labels, max_length) for e in examples]
    return [encode_qa_example(e, tokenizer, max_length) for e in examples]


def collate(features: Sequence[Mapping[str, Any] | EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad features (dicts from :meth:`EncodedExample.feature`, or encoded examples) on the right."""
    rows = [item.feature() if isinstance(item, EncodedExample) else item for item in features]
    width = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, seq)
    for index, row in enumerate(rows):
        input_ids[index, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
        attention_mask[index, : len(row["input_ids"])] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "labels" in rows[0] and isinstance(rows[0]["labels"], list):
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)  # (batch, seq)
        for index, row in enumerate(rows):
            labels[index, : len(row["labels"])] = torch.tensor(row["labels"])
        batch["labels"] = labels
    else:
        for key in ("labels", "start_positions", "end_positions"):
            if key in rows[0]:
                batch[key] = torch.tensor([row[key] for row in rows], dtype=torch.long)
    return batch


class TaskCollator:
    """The loop's collator for task features (nothing random: the generator is unused).

    Args:
        pad_token_id: Id used for padding.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[Mapping[str, Any]], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Return the padded batch."""
        return collate(features, self.pad_token_id)


def decode_token_tags(logits: torch.Tensor, encoded: EncodedExample, labels: Sequence[str]) -> list[str]:
    """Return one tag per word from ``(seq, labels)`` logits (a word cut off by truncation gets ``O``)."""
    predicted = logits.argmax(dim=-1).tolist()
    return [labels[predicted[first]] if first >= 0 else "O" for first in encoded.word_starts]


def decode_qa_answer(start_logits: torch.Tensor, end_logits: torch.Tensor, encoded: EncodedExample,
                     max_answer_tokens: int = 30) -> str:
    """Return the best context span (start <= end, at most ``max_answer_tokens`` long) as text."""
    candidates = [position for position, (start, end) in enumerate(encoded.offsets)
                  if end > start and start >= encoded.context_start and position < start_logits.shape[0]]
    if not candidates:
        return ""
    positions = torch.tensor(candidates)
    starts, ends = start_logits[positions].float(), end_logits[positions].float()
    scores = starts[:, None] + ends[None, :]  # (context tokens, context tokens): start row, end column
    width = positions[None, :] - positions[:, None]  # (context tokens, context tokens)
    scores = scores.masked_fill((width < 0) | (width >= max_answer_tokens), float("-inf"))
    best = int(scores.argmax())
    start_index, end_index = divmod(best, len(candidates))
    start_char = encoded.offsets[candidates[start_index]][0]
    end_char = encoded.offsets[candidates[end_index]][1]
    return encoded.text[start_char:end_char].strip()
