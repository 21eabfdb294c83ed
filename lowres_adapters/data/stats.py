"""Counts for ``lowres data stats``: of a fetched language pack, or of a user's own file.

File statistics read the file with the same readers training uses, so a file that passes
``lowres data stats --text/--parallel/--graph`` is a file training accepts.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from lowres_adapters.data.examples import PackData, TaskData
from lowres_adapters.data.files import normalize_text
from lowres_adapters.data.languages import detect_script, to_iso639_3, validate_language
from lowres_adapters.data.parallel import ParallelSourceConfig, iter_raw_pairs, keep_pair
from lowres_adapters.data.templates import ENGLISH_TEMPLATES
from lowres_adapters.data.text import iter_raw_texts
from lowres_adapters.configs import config_from_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry

SCRIPT_SAMPLE = 2000  # texts sampled for the script distribution


def pack_stats(code: str, data: PackData) -> dict[str, Any]:
    """Return counts of a loaded pack: ``parallel_pairs`` per language pair, per-split sizes, tasks."""
    parallel: Counter[str] = Counter()
    pairs_by_split: dict[str, dict[str, int]] = {}
    for split, pairs in data.pairs.items():
        for pair in pairs:
            key = f"{pair.source_lang}-{pair.target_lang}"
            parallel[key] += 1
            pairs_by_split.setdefault(key, {}).setdefault(split, 0)
            pairs_by_split[key][split] += 1
    return {
        "code": code,
        "parallel_pairs": dict(sorted(parallel.items())),
        "pairs": pairs_by_split,
        "text": {split: len(examples) for split, examples in data.text.items()},
        "text_characters": {split: sum(len(e.text) for e in examples) for split, examples in data.text.items()},
        "tasks": {name: task_stats(task) for name, task in data.tasks.items()},
        "notes": data.notes,
    }


def task_stats(task: TaskData) -> dict[str, Any]:
    """Return a task's kind, labels and per-split sizes; with ``languages`` (split -> language ->
    count) when its examples say their language (cross-lingual tasks)."""
    stats: dict[str, Any] = {"kind": task.kind, "labels": list(task.labels),
                             "splits": {split: len(examples) for split, examples in task.splits.items()}}
    languages = {split: dict(Counter(example.lang for example in examples))
                 for split, examples in task.splits.items() if any(example.lang for example in examples)}
    if languages:
        stats["languages"] = languages
    return stats


def text_file_stats(path: Path, lang: str = "") -> dict[str, Any]:
    """Validate a text file and count its texts, characters, duplicates and scripts."""
    if lang:
        validate_language(lang)
    texts = 0
    characters = 0
    distinct: set[int] = set()
    scripts: Counter[str] = Counter()
    for _, raw in iter_raw_texts(Path(path)):
        text = normalize_text(raw)
        if not text:
            continue
        texts += 1
        characters += len(text)
        distinct.add(hash(text))
        if texts <= SCRIPT_SAMPLE:
            scripts[detect_script(text) or "none"] += 1
    return {"file": str(path), "kind": "text", "lang": lang or None, "texts": texts, "characters": characters,
            "exact_duplicates": texts - len(distinct), "scripts": dict(scripts.most_common())}


def parallel_file_stats(path: Path, source_lang: str = "", target_lang: str = "", target_path: str = "",
                        max_length_ratio: float = 3.0) -> dict[str, Any]:
    """Validate a parallel file (or Moses pair) and count pairs, characters and filtered pairs."""
    config = ParallelSourceConfig(path=str(path), target_path=target_path, source_lang=source_lang,
                                  target_lang=target_lang, max_length_ratio=max_length_ratio)
    pairs = kept = 0
    source_chars = target_chars = 0
    for _, raw_source, raw_target in iter_raw_pairs(config):
        source, target = normalize_text(raw_source), normalize_text(raw_target)
        pairs += 1
        source_chars += len(source)
        target_chars += len(target)
        kept += keep_pair(source, target, config)
    return {"file": str(path), "kind": "parallel", "source_lang": source_lang or None,
            "target_lang": target_lang or None, "pairs": pairs, "pairs_kept_by_filters": kept,
            "source_characters": source_chars, "target_characters": target_chars}


def graph_file_stats(path: Path, source: str) -> dict[str, Any]:
    """Read a graph file through the registered edge source ``source`` (one whose settings take
    ``path``) and count edges per relation and start language."""
    spec = get_registry().data_source(source)
    if spec.yields != "edges":
        raise LowresError(f"data source {source!r} yields {spec.yields}, not edges")
    if "path" not in {field.name for field in dataclasses.fields(spec.config_class)}:
        raise LowresError(f"data source {source!r} does not read a file (its settings have no 'path')")
    relations: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    with_template = 0
    for edge in spec.open(config_from_dict(spec.config_class, {"path": str(path)}, where=source)):
        relations[edge.relation] += 1
        languages[to_iso639_3(edge.start_lang)] += 1
        with_template += edge.relation in ENGLISH_TEMPLATES.predicates
    return {"file": str(path), "kind": "graph", "source": source, "edges": sum(relations.values()),
            "edges_with_template": with_template, "relations": dict(relations.most_common()),
            "start_languages": dict(languages.most_common())}
