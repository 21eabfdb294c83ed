"""Deterministic group splits, leak removal, atomic cache folders and manifests."""

from __future__ import annotations

import json

import pytest

from lowres_adapters.data.cache import (
    atomic_directory,
    read_jsonl,
    read_manifest,
    verify_manifest,
    write_jsonl,
    write_manifest,
)
from lowres_adapters.data.dedup import near_duplicate_key
from lowres_adapters.data.splits import drop_leaked, split_by_group, split_of
from lowres_adapters.errors import InputError, LowresError


def test_groups_stay_together_and_assignment_is_stable():
    items = [(f"page{i % 40}", i) for i in range(400)]
    splits = split_by_group(items, lambda item: item[0])
    pages = {name: {page for page, _ in group} for name, group in splits.items()}
    assert not (pages["train"] & pages["test"]) and not (pages["train"] & pages["validation"])
    assert sum(len(group) for group in splits.values()) == 400
    assert split_of("page7") == split_of("page7") and split_of("page7", seed=0) in splits
    assert {split_of(f"k{i}", {"train": 0.0, "validation": 0.0, "test": 1.0}) for i in range(20)} == {"test"}
    with pytest.raises(LowresError, match="sum to 1"):
        split_of("x", {"train": 0.5})


def test_drop_leaked_removes_texts_seen_in_earlier_splits():
    splits = {"train": ["Open the file."], "validation": ["open the file!", "new"], "test": ["New", "other"]}
    removed = drop_leaked(splits, lambda text: [near_duplicate_key(text)])
    assert splits == {"train": ["Open the file."], "validation": ["new"], "test": ["other"]}
    assert removed == {"train": 0, "validation": 1, "test": 1}


def test_atomic_directory_replaces_only_on_success(tmp_path):
    final = tmp_path / "data" / "xyz"
    with atomic_directory(final) as temporary:
        (temporary / "a.txt").write_text("first", encoding="utf-8")
    assert (final / "a.txt").read_text(encoding="utf-8") == "first"
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as temporary:
            (temporary / "a.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("interrupted")
    assert (final / "a.txt").read_text(encoding="utf-8") == "first"
    assert [p.name for p in final.parent.iterdir()] == ["xyz"]


def test_manifest_checksums_detect_changes(tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", [{"id": 1}, {"id": 2}])
    manifest = write_manifest(tmp_path, {"code": "xyz"})
    assert read_manifest(tmp_path)["files"]["rows.jsonl"] == manifest["files"]["rows.jsonl"]
    assert verify_manifest(tmp_path, manifest) == []
    (tmp_path / "rows.jsonl").write_text('{"id": 3}\n', encoding="utf-8")
    assert verify_manifest(tmp_path, manifest) == ["rows.jsonl: checksum differs"]


def test_read_jsonl_reports_bad_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows\.jsonl:2: expected one JSON object per line"):
        list(read_jsonl(path))
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0]) == {"a": 1}
