"""Training features over a token store built segment by segment, in an order defined segment by segment.

:class:`SegmentedFeatures` is the loop's ``train_features`` over a
:class:`~lowres_adapters.training.token_segments.SegmentedStore`: its rows are segment 0's rows,
then segment 1's, and so on, each segment packed on its own (packing never crosses a segment).
Its :meth:`~SegmentedFeatures.batch_order` visits, in every epoch, the segments in file order and
the rows of each segment in a seeded permutation of that segment (segment 0's is the loop's own
``epoch_order``, so a file of one segment trains exactly as an in-memory list does). The order is a
function of the file and the seed only: a batch waits for the segment it needs, so a slow
background pass delays a batch but never changes it, and a resumed run's (epoch, position)
indexes the same rows.

The held-out examples of a run that evaluates come from the first segment (its last 5%, at most
200), so evaluation never waits for the rest of the file.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

import numpy as np
import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.training.checkpoint import LoopState
from lowres_adapters.training.loop import epoch_order
from lowres_adapters.training.packing import examples_in
from lowres_adapters.training.token_segments import SegmentedStore
from lowres_adapters.training.token_store import TokenCacheFeatures

HELD_OUT_SHARE, HELD_OUT_MAX = 0.05, 200


def segment_order(rows: int, seed: int, epoch: int, segment: int) -> np.ndarray:
    """Return the visiting order of a segment's ``rows`` rows in ``epoch`` (segment 0: the loop's ``epoch_order``)."""
    if segment == 0:
        return np.asarray(epoch_order(rows, seed, epoch), dtype=np.int64)
    generator = torch.Generator().manual_seed(((seed * 100_003 + epoch) * 1_000_003 + segment) % 2**63)
    return torch.randperm(rows, generator=generator).numpy()


class SegmentedFeatures(Sequence):
    """The rows of a segmented store's training examples, built on access (waiting for their segment).

    Args:
        store: The file's segments.
        limit: Keep only the file's first ``limit`` examples (``max_train_examples``).
        held_out: Examples at the end of segment 0 (after ``limit``) kept out of training.
        row_length: Pack each segment into rows of this many tokens (None: one example per row).
    """

    def __init__(self, store: SegmentedStore, *, limit: int | None = None, held_out: int = 0,
                 row_length: int | None = None) -> None:
        self.store, self.limit, self.held_out, self.row_length = store, limit, held_out, row_length
        self._parts: list[Sequence[Any]] = []  # per segment: its training rows
        self._starts: list[int] = [0]  # (parts + 1,) first row of each part
        self._examples_before: list[int] = [0]  # (parts + 1,) file examples before each segment
        self._ended = False

    @classmethod
    def with_held_out(cls, store: SegmentedStore, *, limit: int | None = None,
                      evaluate: bool = False) -> tuple["SegmentedFeatures", TokenCacheFeatures | None]:
        """Return ``(training features, held-out examples or None)``: the held-out ones are the last
        5% (at most 200) of segment 0's examples when ``evaluate``."""
        first = store.segment(0)
        assert first is not None
        kept = first.select(0, limit) if limit is not None else first
        held_out = min(HELD_OUT_MAX, int(len(kept) * HELD_OUT_SHARE)) if evaluate else 0
        validation = kept.select(len(kept) - held_out, len(kept)) if held_out >= 1 else None
        return cls(store, limit=limit, held_out=held_out), validation

    def packed(self, row_length: int) -> "SegmentedFeatures":
        """Return these features with every segment packed into rows of ``row_length`` tokens."""
        return SegmentedFeatures(self.store, limit=self.limit, held_out=self.held_out, row_length=row_length)

    # ----------------------------------------------------------------- parts
    def _part(self, index: int) -> Sequence[Any] | None:
        """Return segment ``index``'s training rows (waiting for it), or None past the last part."""
        while len(self._parts) <= index and not self._ended:
            self._add_part()
        return self._parts[index] if index < len(self._parts) else None

    def _add_part(self) -> None:
        index, before = len(self._parts), self._examples_before[-1]
        segment = None if (self.limit is not None and before >= self.limit) else self.store.segment(index)
        if segment is None:
            self._ended = True
            return
        self._examples_before.append(before + len(segment))
        if self.limit is not None:
            segment = segment.select(0, self.limit - before)
        if index == 0 and self.held_out:
            segment = segment.select(0, len(segment) - self.held_out)
        part: Sequence[Any] = segment.packed(self.row_length) if self.row_length else segment
        self._parts.append(part)
        self._starts.append(self._starts[-1] + len(part))

    def part_at(self, position: int) -> tuple[int, int, int] | None:
        """Return ``(segment, first row, rows)`` of the part holding row ``position`` (None past the end)."""
        index = 0
        while (part := self._part(index)) is not None:
            if position < self._starts[index + 1]:
                return index, self._starts[index], len(part)
            index += 1
        return None

    def _all_parts(self) -> list[Sequence[Any]]:
        self._part(1 << 62)
        return self._parts

    # ----------------------------------------------------------------- the sequence
    def __len__(self) -> int:
        """Return every row of the file (this waits for the whole tokenising pass)."""
        self._all_parts()
        return self._starts[-1]

    def __bool__(self) -> bool:
        return self.part_at(0) is not None

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if index < 0:
            index += len(self)
        if self.part_at(index) is None:
            raise IndexError(index)
        part = bisect.bisect_right(self._starts, index) - 1
        return self._parts[part][index - self._starts[part]]

    @property
    def example_count(self) -> int:
        """Examples (or packed pieces) of every row (this waits for the whole tokenising pass)."""
        return sum(examples_in(part) for part in self._all_parts())

    def known_sizes(self) -> tuple[int, int] | None:
        """Return ``(rows, examples)`` when the file is tokenised, or None while the pass still runs."""
        return (len(self), self.example_count) if self.store.complete else None

    def unique_ids(self) -> np.ndarray:
        """Return every token id of the first segment (all the training rows use when
        :attr:`vocabulary_is_partial` is False)."""
        first = self.store.segment(0)
        assert first is not None
        return first.unique_ids()

    @property
    def vocabulary_is_partial(self) -> bool:
        """Whether training rows lie beyond the first segment (whose ids are then known only as the
        pass goes): True for a text of several segments, however far its pass got."""
        first = self.store.segment(0)
        assert first is not None
        return not (self.store.count == 1 or (self.limit is not None and self.limit <= len(first)))

    def batch_order(self, seed: int) -> "SegmentOrder":
        """Return the loop's batch order over these rows (segment by segment, seeded)."""
        return SegmentOrder(self, seed)


class SegmentOrder:
    """Draws global batches segment by segment and records the position in :class:`LoopState`.

    ``state.position`` counts rows of the current epoch already drawn; it indexes the epoch's
    order, the segments in file order, each in :func:`segment_order`.
    """

    def __init__(self, features: SegmentedFeatures, seed: int) -> None:
        self.features, self.seed = features, seed
        self._cached: tuple[int, int, np.ndarray] | None = None

    def _order(self, epoch: int, segment: int, rows: int) -> np.ndarray:
        if self._cached is None or self._cached[:2] != (epoch, segment):
            self._cached = (epoch, segment, segment_order(rows, self.seed, epoch, segment))
        return self._cached[2]

    def next_batch(self, state: LoopState, size: int) -> list[int]:
        """Return the next ``size`` row indices, moving ``state`` (epoch, position) past them."""
        indices: list[int] = []
        while len(indices) < size:
            found = self.features.part_at(state.position)
            if found is None:
                if state.position == 0:
                    raise LowresError("the training text has no rows")
                state.epoch, state.position = state.epoch + 1, 0
                continue
            segment, start, rows = found
            within = state.position - start
            taken = self._order(state.epoch, segment, rows)[within: within + size - len(indices)]
            indices.extend((taken + start).tolist())
            state.position += len(taken)
        return indices
