"""Mean ± standard deviation over seeds (stability analysis)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from lowres_adapters.errors import LowresError


@dataclass(frozen=True)
class SeedSummary:
    """One metric over several runs.

    Attributes:
        mean: Arithmetic mean.
        std: Sample standard deviation (``n - 1`` in the denominator; 0 for a single run).
        n: Number of runs.
        values: The individual values, in run order.
    """

    mean: float
    std: float
    n: int
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g} (n={self.n})"

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


def mean_std(values: Sequence[float]) -> SeedSummary:
    """Return the mean and sample standard deviation of ``values``."""
    if not values:
        raise LowresError("mean ± std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return SeedSummary(mean=mean, std=0.0, n=1, values=tuple(values))
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return SeedSummary(mean=mean, std=math.sqrt(variance), n=len(values), values=tuple(values))


def summarize_runs(runs: Sequence[Mapping[str, object]]) -> dict[str, SeedSummary]:
    """Return mean ± std of every numeric metric present in all runs (e.g. one dict per seed)."""
    if not runs:
        raise LowresError("no runs to summarise")
    shared = set(runs[0]).intersection(*runs[1:])
    summary = {}
    for name in sorted(shared):
        values = [run[name] for run in runs]
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            summary[name] = mean_std([float(value) for value in values])  # type: ignore[arg-type]
    return summary
