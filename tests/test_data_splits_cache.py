"""Deterministic group splits, leak removal, atomic cache folders and manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

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


def assignment(splits) -> dict[str, str]:
    return {page: name for name, group in splits.items() for page, _ in group}


def test_groups_stay_together_and_assignment_is_stable():
    items = [(f"page{i % 40}", i) for i in range(400)]
    splits = split_by_group(items, lambda item: item[0])
    pages = {name: {page for page, _ in group} for name, group in splits.items()}
    assert not (pages["train"] & pages["test"]) and not (pages["train"] & pages["validation"])
    assert not (pages["validation"] & pages["test"])
    assert sum(len(group) for group in splits.values()) == 400
    assert all(group == sorted(group, key=lambda item: item[1]) for group in splits.values())  # input order kept
    # the corpus read in another order, or grown by new pages, leaves every page where it was
    reordered = split_by_group(list(reversed(items)), lambda item: item[0])
    grown = split_by_group(items + [(f"new{i}", i) for i in range(100)], lambda item: item[0])
    assert assignment(reordered) == assignment(splits)
    assert {page: name for page, name in assignment(grown).items() if page.startswith("page")} == assignment(splits)
    # another seed is another assignment
    assert assignment(split_by_group(items, lambda item: item[0], seed=1)) != assignment(splits)
    assert {split_of(f"k{i}", {"train": 0.0, "validation": 0.0, "test": 1.0}) for i in range(20)} == {"test"}


def test_split_shares_follow_the_fractions():
    keys = [f"chapter-{i}" for i in range(4000)]
    shares = Counter(split_of(key, {"train": 0.6, "validation": 0.1, "test": 0.3}) for key in keys)
    assert abs(shares["train"] / 4000 - 0.6) < 0.03 and abs(shares["test"] / 4000 - 0.3) < 0.03
    assert abs(shares["validation"] / 4000 - 0.1) < 0.03


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    keys = [f"page{i}" for i in range(60)]
    code = ("import json, sys; from lowres_adapters.data.splits import split_of; "
            "print(json.dumps([split_of(k) for k in json.loads(sys.argv[1])]))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(keys)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=60, check=True)
    here = [split_of(key) for key in keys]
    assert json.loads(done.stdout) == here and set(here) == {"train", "validation", "test"}
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
