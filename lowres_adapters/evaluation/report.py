"""Evaluation reports: ``report.md`` and ``report.html`` with PNG plots, plus ``evaluation.json``.

The report leads with what a reader wants to know (did the adapter help, by how much), then shows
how training went (loss curves), translation samples, and where in the network things changed.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any, Mapping

from lowres_adapters.io import atomic_write_text
from lowres_adapters.evaluation.plots import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    plot_layer_heatmap,
    plot_layer_profile,
    plot_loss_curves,
    plot_metric_bars,
)

LM_METRICS = ("bits_per_char", "bits_per_byte", "perplexity", "pseudo_perplexity")
TRANSLATION_METRICS = ("chrf", "chrf_pp", "bleu")
TASK_METRICS = ("accuracy", "macro_f1", "entity_f1", "exact_match", "f1")
OUTPUT_METRICS = {"target_language_share": ("outputs in target language", False),
                  "repeated_ngram_rate": ("repeated n-gram rate", True),
                  "distinct_output_share": ("distinct outputs", False)}
"""Checks of the generated translations: label and whether lower is better."""
LOG_FILE = "train_log.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects of a ``train_log.jsonl`` (bad lines skipped; [] when missing)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _slug(title: str) -> str:
    """Return ``"base-cpt"`` for ``"base -> cpt"``: lower-case words joined by single hyphens."""
    return re.sub(r"[^0-9a-z]+", "-", title.lower()).strip("-")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def summary_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """Return ``(metric, base, adapted, change)`` rows for every figure both models have."""
    base, adapted = results.get("base", {}), results.get("adapted", {})
    rows = []
    for metric in (*LM_METRICS, *TRANSLATION_METRICS, *OUTPUT_METRICS, *TASK_METRICS):
        if not isinstance(adapted.get(metric), (int, float)):
            continue
        name, lower_better = OUTPUT_METRICS.get(metric, (METRIC_LABELS.get(metric, metric),
                                                         metric in LOWER_IS_BETTER))
        label = name + (" ↓" if lower_better else " ↑")
        if not isinstance(base.get(metric), (int, float)):  # e.g. a task head the base model lacks
            rows.append((label, "–", _format(float(adapted[metric])), ""))
            continue
        before, after = float(base[metric]), float(adapted[metric])
        change = f"{100 * (after - before) / before:+.1f}%" if before else "n/a"
        better = (after < before) if lower_better else (after > before)
        rows.append((label, _format(before), _format(after), change + (" ✓" if better else "")))
    return rows


def _make_plots(report_dir: Path, run_dir: Path, results: Mapping[str, Any],
                analyses: Mapping[str, Mapping[str, Any]]) -> dict[str, Path]:
    plots: dict[str, Path] = {}
    base, adapted = results.get("base", {}), results.get("adapted", {})
    for key, metrics, title in (("lm", LM_METRICS, "Held-out language modelling"),
                                ("translation", TRANSLATION_METRICS,
                                 f"Translation {results.get('translation_direction', '')}"),
                                ("tasks", TASK_METRICS, "Tasks")):
        made = plot_metric_bars(base, adapted, metrics, report_dir / f"metrics_{key}.png", title=title)
        if made:
            plots[f"metrics_{key}"] = made
    loss = plot_loss_curves(read_log(run_dir / LOG_FILE), report_dir / "loss.png",
                            title=f"Training loss: {results.get('language', '')} {results.get('adapter_type', '')}")
    if loss:
        plots["loss"] = loss
    for title, analysis in analyses.items():
        slug = _slug(title)
        heatmap = plot_layer_heatmap(analysis, report_dir / f"layers_{slug}.png",
                                     title=f"Relative weight change, {title}")
        if heatmap:
            plots[f"layers_{slug}"] = heatmap
        profile = plot_layer_profile(analysis, report_dir / f"profile_{slug}.png",
                                     title=f"Adapter norms and CKA per layer, {title}")
        if profile:
            plots[f"profile_{slug}"] = profile
    return plots


def _table_md(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_html(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


Section = tuple[str, str, list[tuple[tuple[str, ...], list]], list[str]]
"""A report section: heading, paragraph, tables (header, rows), plot names."""


def _sections(results: Mapping[str, Any], analyses: Mapping[str, Mapping[str, Any]],
              plots: Mapping[str, Path]) -> list[Section]:
    """Return ``(heading, paragraph, tables, plot names)`` for each report section."""
    sections = []
    if not results.get("adapted"):  # a layer-wise analysis on its own
        return sections + _analysis_sections(analyses, plots)
    lead = (f"Run `{results.get('run_dir')}`: {results.get('adapter_type')} adapter ({results.get('recipe')} recipe) "
            f"on `{results.get('base_model')}` for language {results.get('language')}. Held-out split "
            f"`{results.get('eval_split')}`, {results.get('eval_examples')} texts.")
    sections.append(("Summary", lead, [(("metric", "base", "adapted", "change"), summary_rows(results))],
                     [name for name in ("metrics_lm", "metrics_translation", "metrics_tasks") if name in plots]))
    if "loss" in plots:
        sections.append(("Training", "Loss per optimiser step from `train_log.jsonl` "
                         "(dashed: held-out validation loss).", [], ["loss"]))
    if results.get("stages"):
        rows = [(stage, _format(figures.get("bits_per_char", "")))
                for stage, figures in results["stages"].items()]
        sections.append(("Stages", "Bits per character after each stage (from `metrics.json`).",
                         [(("stage", "bits/char"), rows)], []))
    if results.get("samples"):
        rows = [(s["source"], s["reference"], s.get("base") or "", s["adapted"]) for s in results["samples"]]
        signatures = results.get("signatures", {})
        text = (f"{results.get('translation_examples')} pairs {results.get('translation_direction')}, "
                f"beam {results.get('generation', {}).get('num_beams')}. Signatures: "
                + "; ".join(f"{name}: `{value}`" for name, value in signatures.items()))
        sections.append(("Translation samples", text, [(("source", "reference", "base", "adapted"), rows)], []))
    return sections + _analysis_sections(analyses, plots)


def _analysis_sections(analyses: Mapping[str, Mapping[str, Any]], plots: Mapping[str, Path]) -> list[Section]:
    """Return one report section per layer-wise analysis."""
    sections = []
    for title, analysis in analyses.items():
        slug = _slug(title)
        kind_rows = [(kind, _format(group["relative"]), _format(group["delta_norm"]), str(group["tensors"]))
                     for kind, group in sorted(analysis["by_kind"].items(), key=lambda item: -item[1]["relative"])]
        top_rows = [(t["name"], _format(t["relative"]), _format(t["delta_norm"])) for t in analysis["top_tensors"][:8]]
        merged = analysis.get("merged")
        note = ("Every weight trained (full fine-tuning): the weights themselves are compared."
                if analysis.get("trains_base_weights") else
                "The adapter was merged into the weights it adapts (effective weights compared)." if merged else
                "The adapter adds modules of its own: base weights are unchanged, see the adapter norms per layer."
                if merged is False else "")
        ranking = ", ".join(analysis.get("ranking", []))
        sections.append((f"Layer-wise analysis: {title}", f"Types by relative change: {ranking}. {note}",
                         [(("type", "||ΔW||/||W||", "||ΔW||", "tensors"), kind_rows),
                          (("most changed tensors", "||ΔW||/||W||", "||ΔW||"), top_rows)],
                         [name for name in (f"layers_{slug}", f"profile_{slug}") if name in plots]))
    return sections


def _title(results: Mapping[str, Any]) -> str:
    if not results.get("adapted"):
        return f"Layer-wise analysis: {results.get('run_dir', '')}"
    return f"Evaluation: {results.get('language')} · {results.get('adapter_type')} · {results.get('recipe')}"


def render_markdown(results: Mapping[str, Any], analyses: Mapping[str, Mapping[str, Any]],
                    plots: Mapping[str, Path]) -> str:
    """Return the Markdown report (images referenced by file name, next to it)."""
    parts = [f"# {_title(results)}"]
    for heading, text, tables, names in _sections(results, analyses, plots):
        parts.append(f"## {heading}\n\n{text}")
        parts += [_table_md(header, rows) for header, rows in tables if rows]
        parts += [f"![{name}]({plots[name].name})" for name in names]
    return "\n\n".join(parts) + "\n"


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;"
          "text-align:left;vertical-align:top}th{background:#f4f4f4}img{max-width:100%;margin:0.5em 0}"
          "code{background:#f4f4f4;padding:1px 3px}")


def render_html(results: Mapping[str, Any], analyses: Mapping[str, Mapping[str, Any]],
                plots: Mapping[str, Path]) -> str:
    """Return a standalone HTML page (images referenced by file name, next to it)."""
    title = html.escape(_title(results))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"]
    for heading, text, tables, names in _sections(results, analyses, plots):
        paragraph = html.escape(text)
        paragraph = "".join(f"<code>{chunk}</code>" if index % 2 else chunk
                            for index, chunk in enumerate(paragraph.split("`")))
        parts.append(f"<h2>{html.escape(heading)}</h2><p>{paragraph}</p>")
        parts += [_table_html(header, rows) for header, rows in tables if rows]
        parts += [f"<img src='{html.escape(plots[name].name)}' alt='{html.escape(name)}'>" for name in names]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(report_dir: Path, run_dir: Path, results: Mapping[str, Any],
                 analyses: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write plots, ``report.md``, ``report.html`` and ``evaluation.json`` into ``report_dir``.

    Returns:
        The path of ``report.html``.
    """
    analyses = dict(analyses or {})
    report_dir.mkdir(parents=True, exist_ok=True)
    plots = _make_plots(report_dir, Path(run_dir), results, analyses)
    atomic_write_text(report_dir / "evaluation.json",
                      json.dumps({"results": results, "layer_analysis": analyses}, indent=2, default=str) + "\n")
    atomic_write_text(report_dir / "report.md", render_markdown(results, analyses, plots))
    atomic_write_text(report_dir / "report.html", render_html(results, analyses, plots))
    return report_dir / "report.html"
