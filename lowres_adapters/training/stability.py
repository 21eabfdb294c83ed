"""Stability over seeds: run a recipe once per seed and report mean ± std (``--seeds 1,2,3``).

Each seed gets its own run folder ``OUTPUT/seed-<n>/``; the base model is scored once and reused.
``OUTPUT/seeds.json`` holds every seed's figures and the mean ± std of each numeric figure of the
``adapted`` block (sample standard deviation, from :mod:`lowres_adapters.evaluation.stats`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.stats import summarize_runs
from lowres_adapters.training.adapt import RunResult, run, settings_from
from lowres_adapters.training.run_folder import write_json

SEEDS_FILE = "seeds.json"


@dataclass
class SeedsResult:
    """Runs over several seeds and their summary.

    Attributes:
        output: The folder holding ``seed-<n>/`` run folders and ``seeds.json``.
        seeds: The seeds, in run order.
        runs: One :class:`RunResult` per seed.
        summary: Metric name -> ``{"mean", "std", "n", "values"}`` over the adapted figures.
    """

    output: Path
    seeds: tuple[int, ...]
    runs: list[RunResult]
    summary: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """Return what ``seeds.json`` holds."""
        return {
            "seeds": list(self.seeds),
            "base": self.runs[0].metrics.get("base", {}) if self.runs else {},
            "per_seed": {str(seed): run.metrics.get("adapted", {}) for seed, run in zip(self.seeds, self.runs)},
            "adapted": self.summary,
        }


def adapt_seeds(language: str, seeds: Sequence[int], *, config: str | Path | None = None,
                **overrides: Any) -> SeedsResult:
    """Run :func:`~lowres_adapters.training.adapt.adapt` once per seed and summarise.

    Args:
        language: ISO 639-3 code.
        seeds: Seeds to run (distinct).
        config: A TOML or YAML settings file.
        overrides: Settings as for ``adapt``; ``output`` is the parent of the per-seed folders.

    Raises:
        LowresError: On repeated seeds or a bad setting.
    """
    seeds = tuple(int(seed) for seed in seeds)
    if len(set(seeds)) != len(seeds):
        raise LowresError(f"--seeds {','.join(map(str, seeds))}: each seed only once")
    base_settings = settings_from(language, config, **overrides)
    output = Path(base_settings.output or f"runs/{language}-seeds")
    runs: list[RunResult] = []
    base_metrics = None
    for seed in seeds:
        print(f"seed {seed} ({len(runs) + 1} of {len(seeds)})", file=sys.stderr, flush=True)
        settings = settings_from(language, config, **{**overrides, "output": str(output / f"seed-{seed}"),
                                                      "loop": {**base_settings.loop, "seed": seed}})
        result = run(settings, base_metrics=base_metrics)
        base_metrics = result.metrics.get("base")
        runs.append(result)
    adapted = [run_result.metrics.get("adapted", {}) for run_result in runs]
    summary = {name: stats.to_dict() for name, stats in summarize_runs(adapted).items()} if adapted[0] else {}
    result = SeedsResult(output=output, seeds=seeds, runs=runs, summary=summary)
    if runs and runs[0].metrics:
        write_json(output / SEEDS_FILE, result.to_json())
        _echo_summary(result)
    return result


def _echo_summary(result: SeedsResult) -> None:
    figure = result.summary.get("bits_per_char")
    base = result.to_json()["base"].get("bits_per_char")
    if figure:
        base_text = f"base {base:.3f} -> " if base is not None else ""
        print(f"bits/char over seeds {','.join(map(str, result.seeds))}: {base_text}adapted "
              f"{figure['mean']:.3f} ± {figure['std']:.3f} (n={figure['n']})", file=sys.stderr, flush=True)
    print(f"summary: {result.output / SEEDS_FILE}", file=sys.stderr, flush=True)
