"""Deterministic splits: every group (file, page, chapter, ...) goes wholly to one split.

Splitting by group, not by example, keeps near-duplicates of one page or chapter from landing on
both sides. The assignment depends only on the group key and the seed, so it never changes when
the corpus grows or is read in another order.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping, TypeVar

from lowres_adapters.errors import LowresError

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}

Item = TypeVar("Item")


def _check_fractions(fractions: Mapping[str, float]) -> None:
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise LowresError(f"unknown split name(s) {', '.join(unknown)}; expected {', '.join(SPLITS)}")
    if any(value < 0 for value in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise LowresError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")


def unit_interval(key: str, seed: int = 0) -> float:
    """Map ``key`` to a number in [0, 1) that depends only on ``key`` and ``seed``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(group_key: str, fractions: Mapping[str, float] = DEFAULT_FRACTIONS, seed: int = 0) -> str:
    """Return the split (``train``, ``validation`` or ``test``) a group goes to.

    Args:
        group_key: The unit that must stay together (a file name, page path, chapter id, ...).
        fractions: Split name -> share of groups; must sum to 1.
        seed: Changes the assignment as a whole.
    """
    _check_fractions(fractions)
    point = unit_interval(group_key, seed)
    cumulative = 0.0
    for name in SPLITS:
        cumulative += fractions.get(name, 0.0)
        if point < cumulative:
            return name
    return next(name for name in reversed(SPLITS) if fractions.get(name, 0.0) > 0)


def split_by_group(items: Iterable[Item], group_of: Callable[[Item], str],
                   fractions: Mapping[str, float] = DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, list[Item]]:
    """Split ``items`` so that all items of one group land in the same split, in input order.

    Returns:
        Split name -> items, with all three split names present (possibly empty).
    """
    _check_fractions(fractions)
    result: dict[str, list[Item]] = {name: [] for name in SPLITS}
    for item in items:
        result[split_of(group_of(item), fractions, seed)].append(item)
    return result


def drop_leaked(splits: dict[str, list[Item]], keys_of: Callable[[Item], Iterable[str]]) -> dict[str, int]:
    """Remove from ``validation`` and ``test`` every item sharing a key with an earlier split.

    ``train`` keys are removed from validation and test, then validation keys from test, so a
    text seen in training is never evaluated on. Changes ``splits`` in place.

    Returns:
        Split name -> number of items removed.
    """
    seen: set[str] = set()
    removed: dict[str, int] = {}
    for name in SPLITS:
        kept = []
        for item in splits.get(name, []):
            keys = list(keys_of(item))
            if name != "train" and any(key in seen for key in keys):
                continue
            kept.append(item)
        removed[name] = len(splits.get(name, [])) - len(kept)
        splits[name] = kept
        for item in kept:
            seen.update(keys_of(item))
    return removed
