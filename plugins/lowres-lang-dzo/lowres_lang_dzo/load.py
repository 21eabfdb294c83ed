"""Build the Dzongkha pack's honest splits from the aligned help paragraphs.

- Only *translated* Dzongkha is used: at least half its letters in Tibetan script (untranslated
  paragraphs are left in English in the Dzongkha help).
- Splits go by page (80/10/10 on a hash of the page path), never at random; texts are
  deduplicated, and anything whose near-duplicate key (letters, case-folded) occurs in an earlier
  split is removed from validation and test.
- Pairs: Chinese->Dzongkha and English->Dzongkha, source in its own script, source != target.
- Task ``help_module``: the help module of a Dzongkha paragraph (8 classes); texts found in more
  than one module are dropped as ambiguous.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from lowres_adapters.plugin import (
    LabeledExample,
    LowresError,
    PackData,
    PairExample,
    Provenance,
    SPLITS,
    TaskData,
    TextExample,
    drop_leaked,
    near_duplicate_key,
    read_jsonl,
    script_fraction,
    split_of,
)
from lowres_lang_dzo.help_pages import PARAGRAPHS_FILE

MODULES = ("sbasic", "scalc", "schart", "sdraw", "shared", "simpress", "smath", "swriter")
SOURCE_SCRIPTS = {"zho": "Hani", "eng": "Latn"}
MIN_SCRIPT_FRACTION = 0.5
PROVENANCE = Provenance("libreoffice-help", "MPL-2.0", detail="Debian libreoffice-help-{dz,zh-cn,en-us}")

Item = TypeVar("Item")


def _split_unique(rows: Iterable[dict[str, str]], make: Callable[[dict[str, str]], Item | None],
                  unique_key: Callable[[Item], object], leak_keys: Callable[[Item], Iterable[str]]) -> dict[str, list[Item]]:
    splits: dict[str, list[Item]] = {name: [] for name in SPLITS}
    seen: set[object] = set()
    for row in rows:
        item = make(row)
        if item is None or unique_key(item) in seen:
            continue
        seen.add(unique_key(item))
        splits[split_of(row["page"])].append(item)
    drop_leaked(splits, leak_keys)
    return splits


def _is_translated(row: dict[str, str]) -> bool:
    return script_fraction(row["dzo"], "Tibt") >= MIN_SCRIPT_FRACTION


def build_text(rows: list[dict[str, str]]) -> dict[str, list[TextExample]]:
    """Return the unique translated Dzongkha paragraphs split by page."""
    def make(row: dict[str, str]) -> TextExample:
        return TextExample(text=row["dzo"], id=f"{row['page']}#{row['id']}", lang="dzo", provenance=PROVENANCE)

    return _split_unique(rows, make, lambda e: e.text, lambda e: [near_duplicate_key(e.text)])


def build_pairs(rows: list[dict[str, str]], source_lang: str) -> dict[str, list[PairExample]]:
    """Return unique source->Dzongkha pairs split by page."""
    script = SOURCE_SCRIPTS[source_lang]

    def make(row: dict[str, str]) -> PairExample | None:
        source = row.get(source_lang, "")
        if not source or source == row["dzo"] or script_fraction(source, script) < MIN_SCRIPT_FRACTION:
            return None
        return PairExample(source=source, target=row["dzo"], source_lang=source_lang, target_lang="dzo",
                           id=f"{row['page']}#{row['id']}", provenance=PROVENANCE)

    return _split_unique(rows, make, lambda p: (p.source, p.target),
                         lambda p: [near_duplicate_key(p.source), near_duplicate_key(p.target)])


def build_module_task(rows: list[dict[str, str]]) -> TaskData:
    """Return the 8-class help-module classification task on translated Dzongkha paragraphs."""
    modules_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        modules_of[row["dzo"]].add(row["module"])

    def make(row: dict[str, str]) -> LabeledExample | None:
        if row["module"] not in MODULES or len(modules_of[row["dzo"]]) != 1:
            return None
        return LabeledExample(text=row["dzo"], label=row["module"], id=f"{row['page']}#{row['id']}")

    splits = _split_unique(rows, make, lambda e: e.text, lambda e: [near_duplicate_key(e.text)])
    return TaskData(kind="sequence_classification", labels=MODULES, splits=splits,
                    description="Which LibreOffice help module a Dzongkha paragraph comes from (8 classes; "
                                "sdatabase pages and texts shared by several modules left out); split by page.")


def load(directory: Path) -> PackData:
    """Read ``paragraphs.jsonl`` into text, zho/eng->dzo pairs and the help-module task."""
    path = Path(directory) / PARAGRAPHS_FILE
    if not path.is_file():
        raise LowresError(f"{path} is missing: run `lowres data fetch dzo --force`")
    rows = [row for row in read_jsonl(path) if _is_translated(row)]
    pairs: dict[str, list[PairExample]] = {name: [] for name in SPLITS}
    for source_lang in SOURCE_SCRIPTS:
        for split, items in build_pairs(rows, source_lang).items():
            pairs[split].extend(items)
    return PackData(
        text=build_text(rows), pairs=pairs, tasks={"help_module": build_module_task(rows)},
        notes=("LibreOffice help paragraphs aligned by (page, element id); translated Dzongkha only; "
               "split 80/10/10 by page (hash of the page path), never at random; texts whose near-duplicate "
               "occurs in an earlier split removed from validation/test."),
    )
