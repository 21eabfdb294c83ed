"""PNG plots for evaluation reports (matplotlib, Agg backend: no display needed).

Colours are fixed across plots: grey for the base model, blue for the adapted one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from lowres_adapters.evaluation.layers import KINDS
from lowres_adapters.io import atomic_path

BASE_COLOUR = "#8c8c8c"
ADAPTED_COLOUR = "#1f6fb4"
STAGE_COLOURS = ("#1f6fb4", "#d9751e", "#2a9d5b", "#9b3fb5")
LOWER_IS_BETTER = frozenset({"bits_per_char", "bits_per_byte", "perplexity", "pseudo_perplexity"})
METRIC_LABELS = {
    "bits_per_char": "bits per character", "bits_per_byte": "bits per byte", "perplexity": "perplexity (per token)",
    "pseudo_perplexity": "pseudo-perplexity", "bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++",
    "accuracy": "accuracy (%)", "macro_f1": "macro-F1 (%)", "entity_f1": "entity F1 (%)",
    "exact_match": "exact match (%)", "f1": "F1 (%)",
}


def bar_label(value: float) -> str:
    """Return ``value`` to 3 significant digits, trailing zeros kept (3.998 -> "4.00", not "4")."""
    return f"{value:#.3g}".rstrip(".")


def _pyplot() -> Any:
    # lazy: matplotlib is slow to import
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib is slow to import
    import matplotlib.pyplot as pyplot

    return pyplot


def _integer_locator() -> Any:
    # lazy: matplotlib is slow to import
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _save(figure: Any, path: Path) -> Path:
    """Save through a temporary name and a rename, then close the figure."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def plot_loss_curves(records: Sequence[Mapping[str, Any]], path: Path, title: str = "Training") -> Path | None:
    """Plot training loss (and held-out loss when logged) against the step; one colour per stage.

    Returns the path, or None when the log has no loss.
    """
    training = [r for r in records if isinstance(r.get("loss"), (int, float)) and "step" in r]
    evaluation = [r for r in records if isinstance(r.get("eval_loss"), (int, float)) and "step" in r]
    if not training and not evaluation:
        return None
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7, 4))
    stages = list(dict.fromkeys(r.get("stage", "") for r in training + evaluation))
    offset = 0
    for index, stage in enumerate(stages):
        colour = STAGE_COLOURS[index % len(STAGE_COLOURS)]
        steps = [r["step"] + offset for r in training if r.get("stage", "") == stage]
        label = f"{stage} " if stage else ""
        if steps:
            axes.plot(steps, [r["loss"] for r in training if r.get("stage", "") == stage], color=colour,
                      linewidth=1.5, label=f"{label}training loss")
        held = [r for r in evaluation if r.get("stage", "") == stage]
        if held:
            axes.plot([r["step"] + offset for r in held], [r["eval_loss"] for r in held], color=colour,
                      linestyle="--", marker="o", markersize=4, label=f"{label}validation loss")
        stage_steps = [r["step"] for r in training + evaluation if r.get("stage", "") == stage]
        offset += max(stage_steps, default=0)
        if len(stages) > 1 and index < len(stages) - 1:
            axes.axvline(offset, color="#bbbbbb", linewidth=0.8)
    axes.xaxis.set_major_locator(_integer_locator())
    axes.set_xlabel("optimiser step" + (" (stages one after another)" if len(stages) > 1 else ""))
    axes.set_ylabel("loss (nats per token)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(frameon=False)
    return _save(figure, path)


def plot_metric_bars(base: Mapping[str, float], adapted: Mapping[str, float], metrics: Sequence[str],
                     path: Path, title: str = "Base vs adapted") -> Path | None:
    """Draw one small bar chart per metric, base (grey) next to adapted (blue), values printed on the bars.

    A metric only the adapted model has (e.g. a task head's) gets a single bar.
    """
    shown = [m for m in metrics if isinstance(adapted.get(m), (int, float))]
    if not shown:
        return None
    pyplot = _pyplot()
    figure, axes_list = pyplot.subplots(1, len(shown), figsize=(2.6 * len(shown) + 0.6, 3.6), squeeze=False)
    for axes, metric in zip(axes_list[0], shown):
        has_base = isinstance(base.get(metric), (int, float))
        names = ["base", "adapted"] if has_base else ["adapted"]
        values = ([float(base[metric])] if has_base else []) + [float(adapted[metric])]
        colours = [BASE_COLOUR, ADAPTED_COLOUR] if has_base else [ADAPTED_COLOUR]
        bars = axes.bar(names, values, color=colours, width=0.6)
        for bar, value in zip(bars, values):
            axes.annotate(bar_label(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=9, xytext=(0, 2), textcoords="offset points")
        better = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        axes.set_title(f"{METRIC_LABELS.get(metric, metric)}\n({better})", fontsize=10)
        axes.set_ylim(0, max(values) * 1.18 if max(values) > 0 else 1)
        axes.spines[["top", "right"]].set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def plot_layer_heatmap(analysis: Mapping[str, Any], path: Path, title: str) -> Path | None:
    """Draw the relative weight change ``||dW||/||W||`` per type (rows) and layer (columns).

    Types outside the blocks (embeddings, output head, final norm) are listed in the subtitle.
    """
    by_layer = analysis.get("by_kind_and_layer") or {}
    kinds = [kind for kind in KINDS if kind in by_layer]
    if not kinds:
        return None
    layers = sorted({int(layer) for kind in kinds for layer in by_layer[kind]})
    grid = [[by_layer[kind].get(str(layer), {}).get("relative", math.nan) for layer in layers] for kind in kinds]
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(max(5.0, 0.38 * len(layers) + 2.5), 0.55 * len(kinds) + 1.8))
    image = axes.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    axes.set_yticks(range(len(kinds)), kinds)
    step = max(1, len(layers) // 16)
    axes.set_xticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)])
    axes.set_xlabel("layer (block index)")
    if len(kinds) * len(layers) <= 60:
        top = max((value for row in grid for value in row if not math.isnan(value)), default=0.0)
        for row, values in enumerate(grid):
            for column, value in enumerate(values):
                if not math.isnan(value):
                    axes.text(column, row, f"{value:.2g}", ha="center", va="center", fontsize=8,
                              color="black" if top and value > 0.6 * top else "white")
    colourbar = figure.colorbar(image, ax=axes)
    colourbar.set_label("relative change ||ΔW||_F / ||W||_F")
    outside = {kind: group["relative"] for kind, group in (analysis.get("by_kind") or {}).items()
               if kind == "embedding/output"}
    subtitle = ", ".join(f"{kind} (whole model): {value:.3g}" for kind, value in outside.items())
    axes.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    return _save(figure, path)


def plot_layer_profile(analysis: Mapping[str, Any], path: Path, title: str) -> Path | None:
    """Plot, per layer: the adapter's own weight norm (bars) and linear CKA base vs adapted (line)."""
    norms = {key: value for key, value in (analysis.get("adapter_norms") or {}).items() if key != "-"}
    cka = (analysis.get("cka") or {}).get("per_layer") or []
    if not norms and not cka:
        return None
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(7, 3.8))
    if norms:
        layers = [int(key) for key in norms]
        axes.bar([layer + 1 for layer in layers], list(norms.values()), color=ADAPTED_COLOUR, alpha=0.75,
                 label="adapter weight norm (Frobenius)")
        axes.set_ylabel("adapter weight norm (Frobenius)")
    axes.set_xlabel("layer (0 = embeddings; block i is plotted at i + 1)")
    axes.xaxis.set_major_locator(_integer_locator())
    handles, labels = axes.get_legend_handles_labels()
    if cka:
        right = axes.twinx() if norms else axes  # no adapter modules (full fine-tuning): CKA alone
        right.plot(range(len(cka)), cka, color="#c0392b", marker="o", markersize=4,
                   label=f"linear CKA before vs after ({analysis['cka'].get('level', 'token')} level)")
        right.set_ylim(min(0.0, min(cka)), 1.05)
        right.set_ylabel("linear CKA (1 = unchanged)", color="#c0392b")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    figure.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, -0.08))
    axes.set_title(title)
    return _save(figure, path)
