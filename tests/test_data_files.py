"""Reading files: one-line errors naming file, line and what was expected."""

from __future__ import annotations

import gzip

import pytest

from lowres_adapters.data.files import iter_files, iter_lines, normalize_text
from lowres_adapters.errors import InputError


def test_lines_are_numbered_without_line_endings_or_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffone\r\ntwo\n\nthree".encode("utf-8"))
    assert list(iter_lines(path)) == [(1, "one"), (2, "two"), (3, ""), (4, "three")]


def test_invalid_utf8_names_line_and_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nab\xffcd\n")
    with pytest.raises(InputError) as error:
        list(iter_lines(path))
    assert str(error.value) == f"{path}:2: expected UTF-8 text, found invalid byte 0xff at column 3"


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "cut.txt.gz"
    payload = gzip.compress(("line of text\n" * 5000).encode("utf-8"))
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(InputError, match=r"cut\.txt\.gz:\d+: expected more gzip data \(the .gz file is truncated\)"):
        list(iter_lines(path))


def test_gzip_is_read_transparently(tmp_path):
    path = tmp_path / "a.txt.gz"
    path.write_bytes(gzip.compress("α\nβ\n".encode("utf-8")))
    assert [line for _, line in iter_lines(path)] == ["α", "β"]


def test_empty_file_is_an_error_unless_allowed(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="empty.txt:1: expected at least one line of text, found an empty file"):
        list(iter_lines(path))
    assert len(list(iter_lines(path, allow_empty=True))) == 2


def test_missing_file_and_folder_without_matches(tmp_path):
    with pytest.raises(InputError, match="no such"):
        list(iter_lines(tmp_path / "nope.txt"))
    (tmp_path / "x.csv").write_text("a", encoding="utf-8")
    with pytest.raises(InputError, match=r"expected files ending in \.txt"):
        list(iter_files(tmp_path, (".txt",)))


def test_folder_files_come_sorted_and_filtered(tmp_path):
    for name in ("b.txt", "a.txt", "c.csv", ".hidden.txt"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert [p.name for p in iter_files(tmp_path, (".txt",))] == ["a.txt", "b.txt"]


def test_normalize_text_composes_and_collapses_space():
    assert normalize_text("Cafe\u0301  au\tlait ") == "Caf\u00e9 au lait"
