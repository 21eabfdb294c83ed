"""The one atomic-write helper: the target is replaced whole or not at all, and nothing is left behind."""

from __future__ import annotations

import json

import pytest

from lowres_adapters.io import atomic_directory, atomic_path, atomic_write, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "deep" / "file.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as stream:
            stream.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]  # no temporary file left

    atomic_write_json(target, {"ä": 1}, ensure_ascii=False)
    assert target.read_text(encoding="utf-8") == '{"ä": 1}\n'
    assert json.loads(target.read_text(encoding="utf-8")) == {"ä": 1}


def test_atomic_path_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    target = tmp_path / "plot.png"
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".png") and temporary != target
        temporary.write_bytes(b"\x89PNG")
        assert not target.exists()  # nothing visible under the final name before the block ends
    assert target.read_bytes() == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_binary_mode_writes_bytes(tmp_path):
    with atomic_write(tmp_path / "blob", "wb") as stream:
        stream.write(b"\x00\x01")
    assert (tmp_path / "blob").read_bytes() == b"\x00\x01"


def test_atomic_directory_swaps_a_whole_folder_or_keeps_the_old_one(tmp_path):
    final = tmp_path / "pack"
    with atomic_directory(final) as staging:
        (staging / "a.txt").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(final) as staging:
            (staging / "b.txt").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]
    with atomic_directory(final) as staging:
        (staging / "c.txt").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["c.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["pack"]
