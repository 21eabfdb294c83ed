"""Layer-wise analysis of ``cpt_sft`` runs: which layer types and blocks move in CPT and in SFT.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/layerwise.py \\
        --run full=runs/dzo-full-cpt_sft --run lora=runs/dzo-lora-cpt_sft

For each run, the consecutive comparisons of its stages (base -> ``stages/cpt``, ``stages/cpt`` ->
``stages/sft``; never base -> SFT, arXiv 2512.03976) come from
:func:`lowres_adapters.runs.analysis.analyze` (``||dW||_F`` and ``||dW||_F / ||W||_F`` per tensor, the
adapter merged into the weights it adapts, so a LoRA's change is its effective delta ``scale * B A``),
with per-layer linear CKA on the run's first ``--cka-texts`` held-out texts. This script only
regroups those figures: per type, per type and block, per type and third of the blocks (early /
middle / late, aggregated with :func:`~lowres_adapters.evaluation.layers.group_by_kind`), the blocks
that move most, and for adapters the per-block norms of the adapter's own tensors. It writes
``results/layerwise.{json,md}`` and the report's plots (heatmap by type and block, per-layer profile)
as PNGs under ``results/layerwise/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MACHINE = "2-core AMD EPYC (no native bf16), shared with other jobs"
THIRDS = ("early", "middle", "late")
BLOCK_KINDS = ("attention", "mlp", "norm")
"""Types that live inside the blocks (embedding/output is outside them)."""
MAX_PLOT_BYTES = 300_000


def parse_run(value: str) -> tuple[str, Path]:
    """Return ``(label, run folder)`` from ``LABEL=RUN_DIR``."""
    label, separator, folder = value.partition("=")
    if not separator or not label or not folder:
        raise argparse.ArgumentTypeError(f"--run takes LABEL=RUN_DIR, got {value!r}")
    return label, Path(folder)


def split_thirds(layers: Sequence[int]) -> dict[str, list[int]]:
    """Split sorted block indices into early / middle / late thirds (sizes differ by at most one;
    the extra blocks go to the earlier thirds, like ``numpy.array_split``)."""
    ordered = sorted(layers)
    size, extra = divmod(len(ordered), 3)
    thirds, start = {}, 0
    for index, name in enumerate(THIRDS):
        end = start + size + (1 if index < extra else 0)
        thirds[name] = ordered[start:end]
        start = end
    return thirds


def _changes(by_kind_and_layer: Mapping[str, Mapping[str, Mapping[str, float]]], layers: set[int] | None = None,
             kind_as: str | None = None) -> list[Any]:
    """Return one ``TensorChange`` per (type, block) group of an analysis, for the library's aggregation."""
    from lowres_adapters.evaluation.layers import TensorChange

    return [TensorChange(name=f"{kind}.{layer}", kind=kind_as or kind, layer=int(layer), numel=int(group["numel"]),
                         delta_norm=float(group["delta_norm"]), base_norm=float(group["base_norm"]))
            for kind, per_layer in by_kind_and_layer.items() for layer, group in per_layer.items()
            if layers is None or int(layer) in layers]


def by_thirds(by_kind_and_layer: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, Any]]:
    """Return ``{kind: {"early"|"middle"|"late": group, "most": third}}``: each type's change per third of the
    blocks (``sqrt(sum ||dW||^2)`` over the third's tensors) and the third with the highest relative change."""
    from lowres_adapters.evaluation.layers import group_by_kind

    layers = sorted({int(layer) for per_layer in by_kind_and_layer.values() for layer in per_layer})
    grouped: dict[str, dict[str, Any]] = {}
    for third, members in split_thirds(layers).items():
        for kind, group in group_by_kind(_changes(by_kind_and_layer, set(members))).items():
            grouped.setdefault(kind, {})[third] = {**group.to_dict(), "blocks": [members[0], members[-1]]}
    for kind, thirds in grouped.items():
        moved = [third for third in THIRDS if third in thirds and thirds[third]["delta_norm"] > 0]
        thirds["most"] = max(moved, key=lambda third: thirds[third]["relative"]) if moved else None
    return grouped


def block_totals(by_kind_and_layer: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Return each block's change over all its tensors (every type together), by block index."""
    from lowres_adapters.evaluation.layers import group_by_kind_and_layer

    merged = group_by_kind_and_layer(_changes(by_kind_and_layer, kind_as="other"))  # one type: the whole block
    return {str(layer): group.to_dict() for layer, group in merged.get("other", {}).items()}


def top_blocks(groups: Mapping[str, Mapping[str, float]], count: int) -> list[dict[str, Any]]:
    """Return the ``count`` blocks with the highest relative change, highest first."""
    ranked = sorted(groups.items(), key=lambda item: (-item[1]["relative"], int(item[0])))
    return [{"block": int(layer), **group} for layer, group in ranked[:count] if group["delta_norm"] > 0]


def top_adapter_blocks(norms: Mapping[str, float] | None, count: int) -> list[dict[str, Any]]:
    """Return the ``count`` blocks whose adapter norm is largest (blocks only, ``"-"`` left out)."""
    ranked = sorted(((int(layer), norm) for layer, norm in (norms or {}).items() if layer != "-"),
                    key=lambda item: (-item[1], item[0]))
    return [{"block": layer, "norm": norm} for layer, norm in ranked[:count]]


def adapter_thirds(norms: Mapping[str, float] | None) -> dict[str, float] | None:
    """Return the adapter's norm per third of the blocks (``sqrt`` of the summed squares), or None."""
    blocks = {int(layer): norm for layer, norm in (norms or {}).items() if layer != "-"}
    if not blocks:
        return None
    return {third: sum(blocks[layer] ** 2 for layer in members) ** 0.5
            for third, members in split_thirds(list(blocks)).items()}


def summarize_comparison(analysis: Mapping[str, Any], *, top: int = 5) -> dict[str, Any]:
    """Return the regrouped figures of one ``analyze`` result."""
    per_layer = {kind: layers for kind, layers in analysis["by_kind_and_layer"].items() if kind in BLOCK_KINDS}
    totals = block_totals(per_layer)
    return {
        "by_kind": analysis["by_kind"], "ranking": analysis["ranking"],
        "by_kind_and_layer": analysis["by_kind_and_layer"],
        "block_totals": totals,
        "thirds": by_thirds(per_layer),
        "top_blocks": top_blocks(totals, top),
        "top_blocks_by_kind": {kind: top_blocks(layers, 3) for kind, layers in per_layer.items()},
        "top_tensors": analysis["top_tensors"][:top],
        "adapter_norms": analysis.get("adapter_norms") or {},
        "adapter_change_norms": analysis.get("adapter_change_norms"),
        "adapter_norms_thirds": adapter_thirds(analysis.get("adapter_norms")),
        "adapter_change_thirds": adapter_thirds(analysis.get("adapter_change_norms")),
        "top_adapter_change_blocks": top_adapter_blocks(analysis.get("adapter_change_norms"), top),
        "merged": analysis.get("merged"), "trains_base_weights": analysis.get("trains_base_weights"),
        "cka": analysis.get("cka"),
    }


def run_facts(run_dir: Path) -> dict[str, Any]:
    """Return what the run was: adapter, stage settings and held-out figures (from its metrics.json)."""
    def read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text("utf-8")) if path.is_file() else {}

    config, metrics = read(run_dir / "run_config.json"), read(run_dir / "metrics.json")
    wanted = ("bits_per_char", "answer_bits_per_char")
    figures = {"base": metrics.get("base", {}), **(metrics.get("stages") or {})}
    return {"adapter": config.get("adapter"), "adapter_config": config.get("adapter_config"),
            "recipe_options": config.get("recipe_options"),
            "held_out": {name: {key: stage[key] for key in wanted if key in stage} for name, stage in figures.items()},
            "eval_examples": metrics.get("eval_examples"),
            "training": {key: (metrics.get("training") or {}).get(key)
                         for key in ("seconds", "steps", "trainable_parameters")}}


def machine() -> dict[str, Any]:
    """Return where and how the figures were measured."""
    import torch

    return {"machine": MACHINE, "platform": f"{platform.machine()} python {platform.python_version()}",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "load_average": [round(value, 2) for value in os.getloadavg()]}


def _slug(text: str) -> str:
    """Return ``text`` as a file-name part: ``"base -> cpt"`` -> ``"base-cpt"``."""
    return "-".join("".join(character if character.isalnum() else " " for character in text).split())


def save_plots(analysis: Mapping[str, Any], plot_dir: Path, stem: str, title: str) -> list[str]:
    """Draw the report's heatmap and per-layer profile for one comparison; return the PNG paths written."""
    from lowres_adapters.evaluation.plots import plot_layer_heatmap, plot_layer_profile

    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in (plot_layer_heatmap(analysis, plot_dir / f"{stem}_heatmap.png", title=f"||dW||/||W||, {title}"),
                 plot_layer_profile(analysis, plot_dir / f"{stem}_profile.png",
                                    title=f"Adapter norms and CKA per layer, {title}")):
        if path is None:
            continue
        if path.stat().st_size > MAX_PLOT_BYTES:
            raise SystemExit(f"{path}: {path.stat().st_size} bytes, over {MAX_PLOT_BYTES}")
        written.append(str(path.relative_to(plot_dir.parent)))  # relative to the results folder (the .md's)
    return written


def analyse_run(label: str, run_dir: Path, *, cka_texts: int, top: int, plot_dir: Path | None) -> dict[str, Any]:
    """Analyse every consecutive stage pair of one run."""
    from lowres_adapters.artifact import read_metadata
    from lowres_adapters.runs.analysis import analyze
    from lowres_adapters.runs.evaluate import held_out_data, stage_pairs

    texts: list[str] = []
    if cka_texts:
        config = json.loads((run_dir / "run_config.json").read_text("utf-8"))
        texts = held_out_data(read_metadata(run_dir), config, max_examples=cka_texts, translation_examples=1).texts
    comparisons = {}
    for title, before, after in stage_pairs(run_dir):
        started = time.monotonic()
        analysis = analyze(before, after, texts=texts, top=max(top, 10))
        summary = summarize_comparison(analysis, top=top)
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["before"], summary["after"] = str(before), str(after)
        if plot_dir is not None:
            summary["plots"] = save_plots(analysis, plot_dir, f"{_slug(label)}_{_slug(title)}", f"{label}: {title}")
        comparisons[title] = summary
        print(f"{label}: {title}: types by relative change {', '.join(summary['ranking'])} "
              f"({summary['seconds']} s)", file=sys.stderr)
        del analysis
        gc.collect()
    return {"run_dir": str(run_dir), **run_facts(run_dir), "cka_texts": len(texts), "comparisons": comparisons}


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def _bold_max(values: list[float | None]) -> list[str]:
    best = max((value for value in values if value is not None), default=None)
    return [f"**{_e(value)}**" if value is not None and value == best and value > 0 else _e(value) for value in values]


def render_markdown(results: Mapping[str, Any]) -> str:
    """Return results/layerwise.md."""
    from lowres_adapters.evaluation.layers import KINDS

    lines = ["# Layer-wise analysis of `cpt_sft` runs (base -> CPT, CPT -> SFT)", "",
             f"Produced by `{results['command']}` on {results['machine']['machine']} "
             f"({results['machine']['platform']}, torch {results['machine']['torch']}, "
             f"{results['machine']['torch_threads']} thread(s)); load average before "
             f"{results['load_before']}, after {results['machine']['load_average']}; "
             f"{results['seconds']:.0f} s.", "",
             "Relative change = ||dW||_F / ||W||_F over a group's tensors (sqrt of summed squares). For adapters "
             "the weights are the effective ones (LoRA merged), so the change is the adapter's delta; a block's "
             "group includes the linear layers the adapter leaves alone (their delta is 0). Thirds split the "
             "blocks into early / middle / late; **bold** = the largest in its row.", ""]
    for label, run in results["runs"].items():
        lines += [f"## {label}: `{run['run_dir']}`", ""]
        for command in results.get("adapt_commands", {}).get(label, []):
            lines += [f"Trained with `{command}`.", ""]
        held_out = "; ".join(f"{name}: " + ", ".join(f"{key.replace('_', ' ')} {value:.3f}"
                                                     for key, value in stage.items())
                             for name, stage in run["held_out"].items() if stage)
        if held_out:
            lines += [f"Held-out figures ({run['eval_examples']} texts; answer bits/char on the SFT pairs): "
                      f"{held_out}. Adapter `{run['adapter']}` {json.dumps(run['adapter_config'])}; "
                      f"{run['training']['trainable_parameters'] or 0:,} trainable parameters.", ""]
        comparisons = run["comparisons"]
        titles = list(comparisons)
        kinds = [kind for kind in KINDS if any(kind in c["by_kind"] for c in comparisons.values())]
        lines += ["By type, relative change (||dW||_F in brackets):", "",
                  "| comparison | " + " | ".join(kinds) + " | order |",
                  "|---|" + "---:|" * len(kinds) + "---|"]
        for title in titles:
            by_kind = comparisons[title]["by_kind"]
            cells = _bold_max([by_kind.get(kind, {}).get("relative") for kind in kinds])
            cells = [f"{cell} ({by_kind[kind]['delta_norm']:.3g})" if kind in by_kind else cell
                     for cell, kind in zip(cells, kinds)]
            moved = [kind for kind in comparisons[title]["ranking"] if by_kind[kind]["delta_norm"] > 0]
            lines.append(f"| {title} | " + " | ".join(cells) + " | " + " > ".join(moved) + " |")
        lines += ["", "Per-element RMS change ||dW||_F / sqrt(n) by type (the same figure for every type means the "
                  "optimiser moved each weight by about as much, and the relative change only mirrors 1 / rms(W)):", "",
                  "| comparison | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
        for title in titles:
            by_kind = comparisons[title]["by_kind"]
            lines.append(f"| {title} | " + " | ".join(
                _e(by_kind[kind]["delta_norm"] / by_kind[kind]["numel"] ** 0.5) if kind in by_kind else "-"
                for kind in kinds) + " |")
        spans = {}
        for summary in comparisons.values():
            for thirds in summary["thirds"].values():
                spans.update({third: thirds[third]["blocks"] for third in THIRDS if third in thirds})
        lines += ["", "By third of the blocks: relative change (per-element RMS change in brackets):", "",
                  "| comparison | type | " + " | ".join(f"{third} (blocks {spans[third][0]}-{spans[third][1]})"
                                                       if third in spans else third for third in THIRDS)
                  + " | moves most |", "|---|---|---:|---:|---:|---|"]
        for title in titles:
            for kind, thirds in comparisons[title]["thirds"].items():
                cells = _bold_max([thirds.get(third, {}).get("relative") for third in THIRDS])
                cells = [f"{cell} ({_e(thirds[third]['delta_norm'] / thirds[third]['numel'] ** 0.5)})"
                         if third in thirds else cell for cell, third in zip(cells, THIRDS)]
                lines.append(f"| {title} | {kind} | " + " | ".join(cells) + f" | {thirds['most'] or '-'} |")
        lines += ["", "Blocks that move most (all block tensors together; per type: top 3):", "",
                  "| comparison | top blocks (relative) | attention | MLP | norm |", "|---|---|---|---|---|"]
        for title in titles:
            summary = comparisons[title]
            overall = ", ".join(f"{b['block']} ({b['relative']:.2e})" for b in summary["top_blocks"]) or "-"
            per_kind = [", ".join(str(b["block"]) for b in summary["top_blocks_by_kind"].get(kind, [])) or "-"
                        for kind in BLOCK_KINDS]
            lines.append(f"| {title} | {overall} | " + " | ".join(per_kind) + " |")
        lines += ["", "Most changed tensors (relative):", ""]
        for title in titles:
            tensors = ", ".join(f"`{t['name']}` {t['relative']:.2e}" for t in comparisons[title]["top_tensors"])
            lines.append(f"- {title}: {tensors}")
        adapter_rows = [(title, c) for title, c in comparisons.items() if c["adapter_norms_thirds"]]
        if adapter_rows:
            lines += ["", "The adapter's own tensors (LoRA A and B): norm per third after the stage, and norm of "
                      "their change in the stage (CPT -> SFT only: base has no adapter):", "",
                      "| comparison | what | early | middle | late | top blocks |", "|---|---|---:|---:|---:|---|"]
            for title, summary in adapter_rows:
                norms = summary["adapter_norms_thirds"]
                top = ", ".join(str(b["block"]) for b in top_adapter_blocks(summary["adapter_norms"], 5))
                lines.append(f"| {title} | norm after | " + " | ".join(f"{norms[t]:.3g}" for t in THIRDS)
                             + f" | {top} |")
                change = summary["adapter_change_thirds"]
                if change:
                    top = ", ".join(str(b["block"]) for b in summary["top_adapter_change_blocks"])
                    lines.append(f"| {title} | change | " + " | ".join(f"{change[t]:.3g}" for t in THIRDS)
                                 + f" | {top} |")
        cka_rows = [(title, c["cka"]) for title, c in comparisons.items() if c.get("cka")]
        if cka_rows:
            lines += ["", f"Linear CKA between the stages' hidden states ({run['cka_texts']} held-out texts; "
                      "1 = unchanged; index 0 = embeddings, index i = output of block i - 1, the last after the "
                      "final norm):", ""]
            for title, cka in cka_rows:
                values = cka["per_layer"]
                lowest = min(range(len(values)), key=lambda i: values[i])
                lines.append(f"- {title} ({cka['level']} level; lowest {values[lowest]:.3f} at index {lowest}): "
                             + " ".join(f"{value:.3f}" for value in values))
        lines += ["", "Relative change per type and block:", ""]
        for title in titles:
            per_layer = comparisons[title]["by_kind_and_layer"]
            block_kinds = [kind for kind in BLOCK_KINDS if kind in per_layer]
            blocks = sorted({int(layer) for kind in block_kinds for layer in per_layer[kind]})
            lines += [f"<details><summary>{title}</summary>", "",
                      "| block | " + " | ".join(block_kinds) + " | all |", "|---:|" + "---:|" * (len(block_kinds) + 1)]
            for block in blocks:
                cells = [_e(per_layer[kind].get(str(block), {}).get("relative")) for kind in block_kinds]
                total = comparisons[title]["block_totals"].get(str(block), {}).get("relative")
                lines.append(f"| {block} | " + " | ".join(cells) + f" | {_e(total)} |")
            lines += ["", "</details>", ""]
        plots = [(title, path) for title in titles for path in comparisons[title].get("plots", [])]
        if plots:
            lines += ["Plots: " + ", ".join(f"[{Path(path).stem}]({path})" for _, path in plots), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Analyse the runs and write results/<name>.{json,md} and the plots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", type=parse_run, required=True, metavar="LABEL=RUN_DIR",
                        help="a cpt_sft run folder (repeatable)")
    parser.add_argument("--adapt-command", action="append", default=[], metavar="LABEL=COMMAND",
                        help="the command that trained a run, recorded in the results (repeatable)")
    parser.add_argument("--cka-texts", type=int, default=32, help="held-out texts for per-layer CKA (0: none)")
    parser.add_argument("--top", type=int, default=5, help="blocks and tensors listed per comparison")
    parser.add_argument("--name", default="layerwise", help="results/<name>.{json,md}; plots in results/<name>/")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    for label, run_dir in args.run:
        if not (run_dir / "stages").is_dir():
            parser.error(f"{run_dir}: no stages/ folder (not a finished cpt_sft run)")
    adapt_commands: dict[str, list[str]] = {}
    for value in args.adapt_command:
        label, _, command = value.partition("=")
        adapt_commands.setdefault(label, []).append(command)
    load_before = [round(value, 2) for value in os.getloadavg()]
    started = time.monotonic()
    runs = {label: analyse_run(label, run_dir, cka_texts=args.cka_texts, top=args.top,
                               plot_dir=args.results / args.name) for label, run_dir in args.run}
    results = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/layerwise.py " + shlex.join(
                   sys.argv[1:] if argv is None else list(argv)),
               "adapt_commands": adapt_commands, "load_before": load_before,
               "seconds": time.monotonic() - started, "machine": machine(), "runs": runs}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n", "utf-8")
    (args.results / f"{args.name}.md").write_text(render_markdown(results), "utf-8")
    print(f"wrote {args.results / args.name}.json and .md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
