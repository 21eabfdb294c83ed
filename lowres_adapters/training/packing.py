"""Pack short examples into full rows, with attention kept inside each example.

Chichewa verses average ~57 SmolLM2 tokens: padded to the longest of a batch, about half of every
step is padding. Packing puts several examples into one row of ``row_length`` tokens and tells the
model where each example starts, so no token sees another example and every loss equals the
unpacked one:

- positions restart at every example (``position_ids``), so RoPE and absolute position embeddings
  see what they would see unpacked (counting from ``padding_idx + 1`` where the position
  embedding reserves a padding row, as RoBERTa's does: read from the model, not a list of types);
- decoders (Llama, ...) get no ``attention_mask``: transformers >= 4.55 reads the restarts in
  ``position_ids`` and builds a block-diagonal causal mask itself;
- encoders (XLM-R, BERT) get a ``(batch, seq, seq)`` attention mask that is 1 only inside an example;
- causal labels are -100 on the first token of every example (it would be predicted from the
  previous example's last token).

A packed feature is ``{"input_ids", "labels"?, "segment_lengths"}``; :class:`PackedCollator` is a
collator for the training loop (``collate(features, generator) -> batch``).
:func:`isolates_packed_examples` checks on the model itself that packed examples do not see each
other; the speed options turn packing off (with a note) for a model where they would.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.training.fast_lm import body_hidden, split_lm_model
from lowres_adapters.training.lm_objectives import LMObjective, objective_named
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
    rows = packing_plan([len(piece["input_ids"]) for piece in pieces], row_length)
    return [_join([pieces[index] for index in row], with_labels) for row in rows]


def packing_plan(lengths: Sequence[int], row_length: int) -> list[list[int]]:
    """Return the piece indices of each row: best fit, longest first (ties by index), empty pieces dropped
    (:func:`packing_rows` as lists)."""
    row_offsets, pieces = packing_rows(lengths, row_length)
    flat = pieces.tolist()
    return [flat[start:stop] for start, stop in zip(row_offsets[:-1].tolist(), row_offsets[1:].tolist())]


def packing_rows(lengths: Sequence[int] | np.ndarray, row_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the best-fit, longest-first plan as arrays: ``(row_offsets, pieces)``.

    Row ``r`` holds the pieces ``pieces[row_offsets[r]:row_offsets[r + 1]]`` in the order they were
    placed. The plan is the one a per-piece best fit gives (each piece, longest first and ties by
    index, goes into the row with the least free space that still fits it, the row placed into
    most recently among equals; a new row when none fits; empty pieces dropped), computed per
    (piece length, free space) pair instead of per piece: all pieces of one length that land in
    rows of one free space are placed in one numpy step, so 10 M pieces take seconds, not minutes.

    Args:
        lengths: ``(pieces,)`` token counts, each at most ``row_length``.
        row_length: Tokens per row.

    Returns:
        ``row_offsets`` ``(rows + 1,)`` int64 and ``pieces`` ``(placed pieces,)`` piece indices
        (int32 below 2**31 pieces).
    """
    lengths = np.asarray(lengths, dtype=np.int64)  # (pieces,)
    if len(lengths) and (int(lengths.max()) > row_length or int(lengths.min()) < 0):
        raise LowresError(f"packing needs piece lengths between 0 and the row length {row_length}")
    key = (-lengths).astype(np.int16 if row_length < 2**15 else np.int64)  # int16: numpy's radix sort
    order = np.argsort(key, kind="stable")  # (pieces,) longest first, ties by index: the placing order
    del key
    counts = np.bincount(lengths, minlength=row_length + 1)  # (row_length + 1,) pieces per length
    first = len(lengths) - np.cumsum(counts)  # where each length starts in ``order``
    plan = _Plan(len(lengths) - int(counts[0]), row_length)
    for length in range(row_length, 0, -1):
        start, stop = int(first[length]), int(first[length] + counts[length])
        for free in range(length, row_length + 1):  # the least free space that fits first
            while plan.stacks[free] and start < stop:
                start = plan.fill(free, length, start, stop)
            if start == stop:
                break
        if start < stop:
            start = plan.open_rows(length, start, stop)
    return plan.arrays(order)


class _Plan:
    """The rows of a best-fit plan being built: per placed piece (by its position in the placing
    order) its row and its slot in the row, and per free space a stack of row chunks (top last)."""

    def __init__(self, pieces: int, row_length: int) -> None:
        self.row_length, self.rows = row_length, 0
        self.dtype = np.int32 if pieces < 2**31 else np.int64  # half the memory for up to 2 G pieces
        self.row_at = np.empty(pieces, dtype=self.dtype)  # (placed pieces,) row of each piece
        self.slot_at = np.empty(pieces, dtype=self.dtype)  # (placed pieces,) its place in the row
        self.filled = np.zeros(pieces, dtype=self.dtype)  # (rows at most,) pieces in each row so far
        self.stacks: list[list[np.ndarray]] = [[] for _ in range(row_length + 1)]

    def fill(self, free: int, length: int, start: int, stop: int) -> int:
        """Place pieces ``start:stop`` (of ``length``) in rows popped from ``stacks[free]``; return the next."""
        per_row = free // length  # a popped row stays the best fit until it has no room left
        chunk = self.stacks[free][-1]
        take = min(len(chunk), -(-(stop - start) // per_row))
        rows = chunk[len(chunk) - take:][::-1]  # (take,) popped top first
        if take == len(chunk):
            self.stacks[free].pop()
        else:
            self.stacks[free][-1] = chunk[:len(chunk) - take]
        return self._place(rows, per_row, free, length, start, stop)

    def open_rows(self, length: int, start: int, stop: int) -> int:
        """Place pieces ``start:stop`` in new rows, as many to a row as fit; return ``stop``."""
        per_row = self.row_length // length
        rows = np.arange(self.rows, self.rows + -(-(stop - start) // per_row), dtype=self.dtype)
        self.rows += len(rows)
        return self._place(rows, per_row, self.row_length, length, start, stop)

    def _place(self, rows: np.ndarray, per_row: int, free: int, length: int, start: int, stop: int) -> int:
        """Give each of ``rows`` (``free`` tokens free) ``per_row`` pieces in turn (the last one what is
        left), push them onto their new free space's stack in that order and return the next piece."""
        placed = min(stop - start, len(rows) * per_row)
        owners = np.repeat(rows, per_row)[:placed]
        self.row_at[start:start + placed] = owners
        self.slot_at[start:start + placed] = self.filled[owners] + np.tile(np.arange(per_row), len(rows))[:placed]
        self.filled[rows] += per_row
        last = placed - (len(rows) - 1) * per_row  # pieces in the last row
        self.filled[rows[-1]] -= per_row - last
        full = rows if last == per_row else rows[:-1]
        if len(full) and free - per_row * length:
            self.stacks[free - per_row * length].append(full)
        if last != per_row and free - last * length:
            self.stacks[free - last * length].append(rows[-1:])
        return start + placed

    def arrays(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(row_offsets, pieces)``, the pieces of each row in placing order."""
        row_offsets = np.zeros(self.rows + 1, dtype=np.int64)
        np.cumsum(self.filled[:self.rows], out=row_offsets[1:])
        pieces = np.empty(len(self.row_at), dtype=self.dtype)
        pieces[row_offsets[self.row_at] + self.slot_at] = order[:len(self.row_at)]
        return row_offsets, pieces


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
    if hasattr(features, "example_count"):  # a lazy sequence knows without building every row
        return int(features.example_count)
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
        objective: The model's objective (or its name): masked LM gets a ``(batch, seq, seq)``
            attention mask and masking, causal LM leaves each example's first token unlabelled.
        pad_token_id: Id used to fill rows to the same length.
        row_length: Pad every row to this length (None: to the longest row of the batch).
        position_offset: First position id of every example (see :func:`position_offset`).
        mask_token_id, vocab_size, special_ids: For masked LM: masking as the plain collator does it.
        probability: Share of real tokens to predict for masked LM.
    """

    def __init__(self, objective: str | LMObjective, pad_token_id: int, *, row_length: int | None = None,
                 position_offset: int = 0, mask_token_id: int | None = None, vocab_size: int | None = None,
                 special_ids: Sequence[int] = (), probability: float = MASK_PROBABILITY) -> None:
        objective = objective_named(objective)
        if objective.masked and (mask_token_id is None or vocab_size is None):
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
    def for_model(cls, objective: str | LMObjective, model: Any, tokenizer: Any,
                  row_length: int | None = None) -> "PackedCollator":
        """Return a collator set up from a transformers model and its tokenizer."""
        return cls(objective, tokenizer.pad_token_id, row_length=row_length, position_offset=position_offset(model),
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
        if not self.objective.masked:
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
            if not self.objective.predicts_first_token:
                labels[row, start] = IGNORE_INDEX  # would be predicted from the previous example
            start = stop
        # Padding: its own segment of restarted positions (decoders see it as one more example).
        padding = width - start
        position_ids[row, start:] = torch.arange(padding) + self.position_offset
        if self.position_offset:
            position_ids[row, start:] = self.position_offset - 1  # RoBERTa's padding position


def position_offset(model: Any) -> int:
    """Return the first position id of an example for ``model``.

    A position embedding with a padding row (``padding_idx``, as RoBERTa's and XLM-R's) numbers
    real tokens from ``padding_idx + 1``; one without (BERT) and rotary models (Llama) from 0.
    """
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "position_embeddings" and isinstance(module, torch.nn.Embedding):
            return module.padding_idx + 1 if module.padding_idx is not None else 0
    return 0


def isolates_packed_examples(model: Any, collator: PackedCollator, vocab_size: int) -> bool:
    """Return True when ``model`` gives two examples packed in one row the hidden states it gives
    each alone, i.e. the packed batch's ``position_ids`` / attention mask keep them apart.

    Architectures whose attention ignores both (or that re-derive positions themselves) fail this
    check, and packing would leak one example into the next. Runs the body once on a tiny batch.
    """
    low = 5 if vocab_size > 64 else 0
    examples = [[low + (7 * i) % (vocab_size - low) for i in range(1, 6)],
                [low + (11 * i) % (vocab_size - low) for i in range(1, 4)]]
    probe = PackedCollator(collator.objective, collator.pad_token_id, position_offset=collator.position_offset,
                           mask_token_id=collator.mask_token_id, vocab_size=collator.vocab_size,
                           probability=1e-12)
    packed = probe([{"input_ids": examples[0] + examples[1], "segment_lengths": [5, 3]}], torch.Generator())
    parts = split_lm_model(model)
    was_training = parts.body.training
    parts.body.eval()
    try:
        with torch.no_grad():
            together = body_hidden(parts, packed)[0]  # (8, hidden)
            alone = [body_hidden(parts, probe([{"input_ids": ids}], torch.Generator()))[0] for ids in examples]
    finally:
        parts.body.train(was_training)
    return torch.allclose(together, torch.cat(alone), rtol=1e-3, atol=1e-4)
