"""The vectorised packing plan is the per-piece best fit, row for row, and it keeps every piece once."""

from __future__ import annotations

import numpy as np
import pytest

from lowres_adapters.errors import LowresError
from lowres_adapters.training.packing import packing_plan, packing_rows


def best_fit_one_by_one(lengths, row_length):
    """The plan as the definition reads: each piece, longest first (ties by index), into the row with the
    least free space that fits it (the most recently placed into among equals), else a new row."""
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    rows, space = [], []
    with_space = [[] for _ in range(row_length + 1)]
    for index in order:
        length = lengths[index]
        if length == 0:
            continue
        free = next((free for free in range(length, row_length + 1) if with_space[free]), None)
        if free is None:
            row = len(rows)
            rows.append([])
            space.append(row_length)
        else:
            row = with_space[free].pop()
        rows[row].append(index)
        space[row] -= length
        with_space[space[row]].append(row)
    return rows


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("row_length", [2, 7, 16, 128])
def test_the_plan_is_the_one_by_one_best_fit(seed, row_length):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 3000))
    if seed % 3 == 0:  # verse-like: mostly short, some full rows
        lengths = np.minimum(rng.geometric(min(1.0, 3 / row_length), size), row_length)
    elif seed % 3 == 1:
        lengths = rng.integers(0, row_length + 1, size)
    else:  # few distinct lengths, many ties
        lengths = rng.choice([0, 1, row_length // 2, row_length // 3 + 1, row_length], size)
    expected = best_fit_one_by_one(lengths.tolist(), row_length)
    assert packing_plan(lengths.tolist(), row_length) == expected
    row_offsets, pieces = packing_rows(lengths, row_length)
    assert sorted(pieces.tolist()) == np.flatnonzero(lengths).tolist()  # every non-empty piece once
    row_tokens = np.add.reduceat(lengths[pieces], row_offsets[:-1]) if len(pieces) else np.zeros(0)
    assert (row_tokens <= row_length).all()


def test_empty_input_and_a_piece_longer_than_a_row():
    row_offsets, pieces = packing_rows([], 8)
    assert row_offsets.tolist() == [0] and pieces.tolist() == []
    assert packing_plan([0, 0], 8) == []
    with pytest.raises(LowresError):
        packing_rows([3, 9], 8)
