"""Conformance kit for language packs: one call a pack's own tests make.

    from lowres_adapters.plugin import check_language_pack

    def test_my_pack_conforms():
        check_language_pack(MY_PACK)         # or a registered code: check_language_pack("xyz")

It fetches the pack into a temporary folder (or reads ``directory`` when given) and checks: every
source names its route and licence; the fetch recorded provenance (``record_provenance``) with a
route and a licence; ``load`` returns a ``PackData`` whose split names are ``train``,
``validation`` and ``test`` only, with held-out data; text is NFC; ids are non-empty, unique in
their split and disjoint across splits (a task's per-language splits such as ``test_eng`` may
repeat the ids of their translations); no text of the test split is also a training text; the
pack's language is on every example; each example names a corpus and its licence. The counts it
reports are what ``load`` returned, split by split.
"""

from __future__ import annotations

import json
import tempfile
import unicodedata
from pathlib import Path
from typing import Any, Iterable

from lowres_adapters.data.cache import PROVENANCE_NAME
from lowres_adapters.data.examples import PackData
from lowres_adapters.data.splits import SPLITS
from lowres_adapters.specs import LanguagePack
from lowres_adapters.testing.conformance import ConformanceReport, _check, _require, resolve_spec


def check_language_pack(spec_or_code: LanguagePack | str, *, directory: Path | str | None = None,
                        max_leaked_share: float = 0.0) -> ConformanceReport:
    """Check a language pack; raise ``ConformanceError`` on the first failure.

    Args:
        spec_or_code: The :class:`~lowres_adapters.specs.LanguagePack`, or a registered code.
        directory: Already-fetched data to check; None fetches into a temporary folder.
        max_leaked_share: Share of test examples allowed to repeat a training text exactly
            (formulaic sentences that recur in a corpus); 0 by default.

    Returns:
        A report whose ``passed`` lists the checks and ``trainable`` holds ``"<text|pairs>/<split>"`` counts.
    """
    pack = resolve_spec(spec_or_code, LanguagePack, "language_packs")
    report = ConformanceReport(adapter_type=pack.code)
    _check(pack.code, "metadata", "sources name a route and a licence", lambda: _check_sources(pack), report)
    with tempfile.TemporaryDirectory(prefix="lowres-pack-kit-") as temporary:
        folder = Path(directory) if directory is not None else Path(temporary)
        if directory is None:
            _check(pack.code, "fetch", "writes data", lambda: _fetch(pack, folder), report)
        _check(pack.code, "fetch", "provenance recorded with route and licence", lambda: _check_provenance(folder),
               report)
        data = _check(pack.code, "load", "returns PackData", lambda: _load(pack, folder), report)
    _check(pack.code, "splits", "named train/validation/test, with held-out data", lambda: _check_splits(data),
           report)
    for label, splits in _groups(data):
        _check(pack.code, label, "NFC text, language and licence on every example",
               lambda: _check_examples(pack, label, splits), report)
        _check(pack.code, label, "ids unique and disjoint across splits", lambda: _check_ids(label, splits), report)
        _check(pack.code, label, "no test text is also a training text", lambda: _check_leaks(label, splits, max_leaked_share), report)
        for split, examples in splits.items():
            report.trainable[f"{label}/{split}"] = len(examples)
    return report


def _check_sources(pack: LanguagePack) -> None:
    _require(bool(pack.sources), "sources is empty: name every corpus with its route and licence")
    for source in pack.sources:
        _require(bool(source.route.strip()), f"source {source.name!r} has no route")
        _require(source.licence.strip().lower() not in ("", "unknown"), f"source {source.name!r} has no licence")


def _fetch(pack: LanguagePack, folder: Path) -> None:
    pack.fetch(folder)
    _require(any(path.is_file() for path in folder.rglob("*")), "fetch wrote no files")


def _check_provenance(folder: Path) -> None:
    path = folder / PROVENANCE_NAME
    _require(path.is_file(), f"no {PROVENANCE_NAME}: call record_provenance(directory, route=..., licence=...) "
                             "in fetch")
    records = json.loads(path.read_text("utf-8"))
    _require(bool(records), f"{PROVENANCE_NAME} is empty")
    for record in records:
        _require(bool(record.get("route")) and bool(record.get("licence")),
                 f"a provenance record lacks a route or a licence: {record}")


def _load(pack: LanguagePack, folder: Path) -> PackData:
    data = pack.load(folder)
    _require(isinstance(data, PackData), f"load returned {type(data).__name__}, not PackData")
    return data


def _groups(data: PackData) -> Iterable[tuple[str, dict[str, list[Any]]]]:
    yield "text", data.text
    yield "pairs", data.pairs
    for name, task in data.tasks.items():
        yield f"task {name}", task.splits


def _check_splits(data: PackData) -> None:
    for label, splits in _groups(data):
        unknown = sorted(split for split in splits if _base_split(split) not in SPLITS)
        _require(not unknown, f"{label}: split names {unknown} are not among {', '.join(SPLITS)} "
                              "(a task may add a language: test_eng)")
    _require(bool(data.text.get("test")) or bool(data.pairs.get("test")),
             "no held-out test split in text or pairs: evaluation would have nothing honest to score")


def _base_split(split: str) -> str:
    """Return ``test`` for ``test`` and for a task's per-language ``test_eng``."""
    return split.split("_", 1)[0]


def _texts(example: Any) -> list[str]:
    values = (getattr(example, name, None) for name in ("text", "source", "target", "question"))
    return [value for value in values if isinstance(value, str) and value]


def _check_examples(pack: LanguagePack, label: str, splits: dict[str, list[Any]]) -> None:
    for split, examples in splits.items():
        for example in examples:
            for text in _texts(example):
                _require(unicodedata.normalize("NFC", text) == text, f"{label}/{split} {example.id!r} is not NFC")
            langs = [getattr(example, name, None) for name in ("lang", "source_lang", "target_lang")]
            if label in ("text", "pairs"):
                _require(pack.code in langs, f"{label}/{split} {example.id!r} is not in {pack.code!r}: {langs}")
            provenance = getattr(example, "provenance", None)
            if provenance is not None:
                _require(provenance.licence not in ("", "unknown"), f"{label}/{split} {example.id!r} has no licence")


def _check_ids(label: str, splits: dict[str, list[Any]]) -> None:
    seen: dict[str, str] = {}
    for split, examples in splits.items():
        in_split: set[str] = set()
        for example in examples:
            _require(bool(example.id), f"{label}/{split}: an example has an empty id")
            _require(example.id not in in_split, f"{label}/{split}: id {example.id!r} appears twice")
            in_split.add(example.id)
            other = seen.get(example.id)
            _require(other is None or _base_split(other) == _base_split(split),
                     f"{label}: id {example.id!r} is in both {other} and {split}")
            seen[example.id] = split


def _check_leaks(label: str, splits: dict[str, list[Any]], max_share: float) -> None:
    train = {text for split, examples in splits.items() if _base_split(split) == "train"
             for example in examples for text in _texts(example)}
    leaked = [example.id for split, examples in splits.items() if _base_split(split) == "test"
              for example in examples if set(_texts(example)) & train]
    tested = sum(len(examples) for split, examples in splits.items() if _base_split(split) == "test")
    _require(len(leaked) <= max_share * tested,
             f"{label}: {len(leaked)} of {tested} test examples repeat a training text, e.g. {leaked[:3]}")
