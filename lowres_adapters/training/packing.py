"""Pack short examples into full rows, with attention kept inside each example.

Chichewa verses average ~57 SmolLM2 tokens: padded to the longest of a batch, about half of every
step is padding. Packing puts several examples into one row of ``row_length`` tokens and tells the
model where each example starts, so no token sees another example and every loss equals the
unpacked one:

- positions restart at every example (``position_ids``), so RoPE and absolute position embeddings
  see what they would see unpacked;
- decoders (Llama, ...) get no ``attention_mask``: transformers >= 4.55 reads the restarts in
  ``position_ids`` and builds a block-diagonal causal mask itself;
- encoders (XLM-R, BERT) get a ``(batch, seq, seq)`` attention mask that is 1 only inside an example;
- causal labels are -100 on the first token of every example (it would be predicted from the
  previous example's last token).

A packed feature is ``{"input_ids", "labels"?, "segment_lengths"}``; :class:`PackedCollator` is a
collator for the training loop (``collate(features, generator) -> batch``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.training.objectives import IGNORE_INDEX, MASK_PROBABILITY, mask_tokens

Feature = dict[str, list[int]]
Batch = dict[str, torch.Tensor]


def pack_features(features: Sequence[Mapping[str, Any]], row_length: int) -> list[Feature]:
    """Pack features into rows of at most ``row_length`` tokens (best fit, longest first).

    Features longer than a row are split into row-sized pieces first. The result is deterministic
    for a given input order.

    Args:
        features: ``{"input_ids": [...], "labels"?: [...]}`` dicts.
        row_length: Tokens per packed row.

    Returns:
        Packed features, each with ``input_ids``, ``labels`` (when the inputs had them) and
        ``segment_lengths`` (the lengths of the examples in the row, in order).
    """
    if row_length < 2:
        raise LowresError(f"row length must be at least 2, got {row_length}")
    pieces = [piece for feature in features for piece in _split(feature, row_length)]
    with_labels = any("labels" in piece for piece in pieces)
    order = sorted(range(len(pieces)), key=lambda index: (-len(pieces[index]["input_ids"]), index))
    rows: list[list[int]] = []  # piece indices per row
    space: list[int] = []  # free tokens per row
    rows_with_space: list[list[int]] = [[] for _ in range(row_length + 1)]  # free tokens -> rows
    for index in order:
        length = len(pieces[index]["input_ids"])
        if length == 0:
            continue
        row = _take_best_fit(rows_with_space, length)
        if row is None:
            row = len(rows)
            rows.append([])
            space.append(row_length)
        rows[row].append(index)
        space[row] -= length
        rows_with_space[space[row]].append(row)
    return [_join([pieces[index] for index in row], with_labels) for row in rows]


def _split(feature: Mapping[str, Any], row_length: int) -> list[Mapping[str, Any]]:
    ids = list(feature["input_ids"])
    if len(ids) <= row_length:
        return [feature]
    labels = feature.get("labels")
    pieces = []
    for start in range(0, len(ids), row_length):
        piece: dict[str, list[int]] = {"input_ids": ids[start:start + row_length]}
        if labels is not None:
            piece["labels"] = list(labels[start:start + row_length])
        pieces.append(piece)
    return pieces


def _take_best_fit(rows_with_space: list[list[int]], length: int) -> int | None:
    """Pop the row with the least free space that still fits ``length`` tokens."""
    for free in range(length, len(rows_with_space)):
        if rows_with_space[free]:
            return rows_with_space[free].pop()
    return None


def _join(pieces: Sequence[Mapping[str, Any]], with_labels: bool) -> Feature:
    packed: Feature = {"input_ids": [], "segment_lengths": []}
    if with_labels:
        packed["labels"] = []
    for piece in pieces:
        ids = list(piece["input_ids"])
        packed["input_ids"].extend(ids)
        packed["segment_lengths"].append(len(ids))
        if with_labels:
            packed["labels"].extend(piece.get("labels", ids))
    return packed


def examples_in(features: Sequence[Mapping[str, Any]]) -> int:
    """Return how many examples ``features`` hold: a packed row counts its segments, a plain feature one."""
    return sum(len(feature.get("segment_lengths") or (0,)) for feature in features)


def packing_efficiency(features: Sequence[Mapping[str, Any]], row_length: int) -> float:
    """Return the share of row tokens that are real tokens (1.0 = no padding at all)."""
    if not features:
        return 0.0
    real = sum(len(feature["input_ids"]) for feature in features)
    return real / (len(features) * row_length)


class PackedCollator:
    """Collate packed features into a batch whose examples never attend to each other.

    Args:
        objective: ``"clm"`` (decoders) or ``"mlm"`` (encoders).
        pad_token_id: Id used to fill rows to the same length.
        row_length: Pad every row to this length (None: to the longest row of the batch).
        position_offset: First position id of every example (XLM-R/RoBERTa count from
            ``padding_idx + 1``; BERT and Llama from 0).
        mask_token_id, vocab_size, special_ids: For ``"mlm"``: masking as the plain collator does it.
        probability: Share of real tokens to predict for ``"mlm"``.
    """

    def __init__(self, objective: str, pad_token_id: int, *, row_length: int | None = None,
                 position_offset: int = 0, mask_token_id: int | None = None, vocab_size: int | None = None,
                 special_ids: Sequence[int] = (), probability: float = MASK_PROBABILITY) -> None:
        if objective not in ("clm", "mlm"):
            raise LowresError(f"objective must be 'clm' or 'mlm', got {objective!r}")
        if objective == "mlm" and (mask_token_id is None or vocab_size is None):
            raise LowresError("masked LM packing needs mask_token_id and vocab_size")
        self.objective = objective
        self.pad_token_id = pad_token_id
        self.row_length = row_length
        self.position_offset = position_offset
        self.mask_token_id = mask_token_id
        self.vocab_size = vocab_size
        self.special_ids = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
        self.probability = probability

    @classmethod
    def for_model(cls, objective: str, model: Any, tokenizer: Any, row_length: int | None = None) -> "PackedCollator":
        """Return a collator set up from a transformers model and its tokenizer."""
        config = model.config
        offset = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
        return cls(objective, tokenizer.pad_token_id, row_length=row_length, position_offset=offset,
                   mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                   special_ids=tokenizer.all_special_ids)

    def __call__(self, features: Sequence[Mapping[str, Any]], generator: torch.Generator) -> Batch:
        """Return ``input_ids``, ``labels``, ``position_ids``, ``token_mask`` (and, for encoders, a
        ``(batch, seq, seq)`` ``attention_mask``), all ``(batch, seq, ...)``."""
        if not features:
            raise LowresError("cannot collate an empty batch")
        width = self.row_length or max(len(feature["input_ids"]) for feature in features)
        shape = (len(features), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        segment_ids = torch.full(shape, -1, dtype=torch.long)  # -1 on padding
        position_ids = torch.zeros(shape, dtype=torch.long)
        for row, feature in enumerate(features):
            self._fill_row(row, feature, width, input_ids, labels, segment_ids, position_ids)
        token_mask = (segment_ids >= 0).long()
        batch: Batch = {"input_ids": input_ids, "position_ids": position_ids, "token_mask": token_mask}
        if self.objective == "clm":
            batch["labels"] = labels
            return batch
        same_example = segment_ids[:, :, None] == segment_ids[:, None, :]  # (batch, seq, seq)
        padding = segment_ids < 0
        # Padding attends to itself only, so no row of the softmax is empty.
        eye = torch.eye(width, dtype=torch.bool)[None]  # (1, seq, seq)
        batch["attention_mask"] = ((same_example & ~padding[:, None, :]) | eye).long()
        never_masked = torch.isin(input_ids, self.special_ids) | padding
        batch["input_ids"], batch["labels"] = mask_tokens(
            input_ids, never_masked, mask_token_id=self.mask_token_id, vocab_size=self.vocab_size,
            generator=generator, probability=self.probability,
        )
        return batch

    def _fill_row(self, row: int, feature: Mapping[str, Any], width: int, input_ids: torch.Tensor,
                  labels: torch.Tensor, segment_ids: torch.Tensor, position_ids: torch.Tensor) -> None:
        ids = torch.tensor(feature["input_ids"], dtype=torch.long)
        if ids.numel() > width:
            raise LowresError(f"a packed row of {ids.numel()} tokens is longer than {width}")
        lengths = feature.get("segment_lengths") or [ids.numel()]
        input_ids[row, : ids.numel()] = ids
        row_labels = torch.tensor(feature.get("labels", feature["input_ids"]), dtype=torch.long)
        start = 0
        for segment, length in enumerate(lengths):
            stop = start + length
            segment_ids[row, start:stop] = segment
            position_ids[row, start:stop] = torch.arange(length) + self.position_offset
            labels[row, start:stop] = row_labels[start:stop]
            if self.objective == "clm":
                labels[row, start] = IGNORE_INDEX  # would be predicted from the previous example
            start = stop
        # Padding: its own segment of restarted positions (decoders see it as one more example).
        padding = width - start
        position_ids[row, start:] = torch.arange(padding) + self.position_offset
        if self.position_offset:
            position_ids[row, start:] = self.position_offset - 1  # RoBERTa's padding position
