"""`lowres data fetch` / `lowres data stats`: atomic, idempotent fetches; one-line errors on bad files."""

from __future__ import annotations

import gzip
import json

import pytest

from lowres_adapters.cli import main
from lowres_adapters.data.examples import PackData, PairExample, TextExample
from lowres_adapters.data.packs import fetch_pack, load_pack_data
from lowres_adapters.errors import LowresError
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import LanguagePack, SourceInfo

FETCHES = []


def _fetch(directory):
    FETCHES.append(directory)
    (directory / "pairs.tsv").write_text("hello\tmoni\nthanks\tzikomo\n", encoding="utf-8")


def _broken_fetch(directory):
    (directory / "partial.txt").write_text("half", encoding="utf-8")
    raise LowresError("route apt foo failed: the apt lists do not know these packages")


def _load(directory):
    lines = (directory / "pairs.tsv").read_text(encoding="utf-8").splitlines()
    pairs = [PairExample(*line.split("\t"), "eng", "nya", f"p{i}") for i, line in enumerate(lines)]
    return PackData(text={"train": [TextExample(p.target, p.id, "nya") for p in pairs], "test": []},
                    pairs={"train": pairs[:1], "validation": [], "test": pairs[1:]})


class ToyPacks:
    @hookimpl
    def register_language_packs(self, register):
        register(LanguagePack(code="nya", script="Latn", name="Chichewa", description="toy", fetch=_fetch,
                              load=_load, sources=(SourceInfo("toy", "pip toy", "MIT", "toy data"),)))
        register(LanguagePack(code="dzo", script="Tibt", name="Dzongkha", description="broken",
                              fetch=_broken_fetch, load=_load))


@pytest.fixture
def toy_packs(empty_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    empty_registry.add_plugin(ToyPacks(), name="toy_packs")
    FETCHES.clear()
    return tmp_path / "cache"


def run(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as done:
        code = done.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_load_before_fetch_says_what_to_run(toy_packs):
    with pytest.raises(LowresError, match="run `lowres data fetch nya`"):
        load_pack_data("nya")


def test_fetch_is_atomic_idempotent_and_checksummed(toy_packs):
    first = fetch_pack("nya")
    assert first.status == "fetched" and len(FETCHES) == 1
    manifest = json.loads((toy_packs / "data" / "nya" / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["files"]["pairs.tsv"]["sha256"]) == 64 and manifest["sources"][0]["route"] == "pip toy"
    assert fetch_pack("nya").status == "cached" and len(FETCHES) == 1
    (toy_packs / "data" / "nya" / "pairs.tsv").write_text("tampered\tx\n", encoding="utf-8")
    assert fetch_pack("nya").status == "fetched" and len(FETCHES) == 2
    assert fetch_pack("nya", force=True).status == "fetched" and len(FETCHES) == 3


def test_failed_fetch_leaves_nothing_behind(toy_packs, capsys):
    code, _, err = run(capsys, "data", "fetch", "dzo")
    assert code == 1
    assert err.strip().splitlines()[-1] == "error: route apt foo failed: the apt lists do not know these packages"
    assert not (toy_packs / "data" / "dzo").exists()
    assert [p.name for p in (toy_packs / "data").iterdir()] == []


def test_stats_of_a_pack_counts_pairs_per_language_pair(toy_packs, capsys):
    assert run(capsys, "data", "fetch", "nya")[0] == 0
    code, out, _ = run(capsys, "data", "stats", "nya", "--json")
    stats = json.loads(out)
    assert stats["parallel_pairs"] == {"eng-nya": 2}
    assert stats["pairs"]["eng-nya"] == {"train": 1, "test": 1}
    assert stats["text"] == {"train": 2, "test": 0}


@pytest.mark.parametrize("content, args, expected", [
    (b"ok\n\xc3\x28bad\n", ["--text"], ":2: expected UTF-8 text, found invalid byte 0xc3 at column 1"),
    (b"", ["--text"], ":1: expected at least one line of text, found an empty file"),
    (b"a\tb\nc\n", ["--parallel"], ":2: expected 2 tab-separated columns, found 1"),
    (b"a\tb\n", ["--parallel", "--source-lang", "english"], "unknown language code 'english'"),
    (b"/a/x\t/r/IsA\t/c/en/a\n", ["--graph", "--graph-source", "conceptnet_edges"], ":1: expected 5 tab-separated columns"),
    (b"/a/x\t/r/IsA\t/c/en/a\n", ["--graph"], "--graph needs --graph-source NAME"),
    (b"a\n", ["--graph", "--graph-source", "text"], "data source 'text' yields text, not edges"),
])
def test_bad_user_files_give_one_line_and_exit_1(tmp_path, capsys, content, args, expected):
    path = tmp_path / "user.tsv"
    path.write_bytes(content)
    code, out, err = run(capsys, "data", "stats", *args[:1], str(path), *args[1:])
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_truncated_gz_and_mismatched_moses_files(tmp_path, capsys):
    cut = tmp_path / "text.txt.gz"
    data = gzip.compress(("word " * 20 + "\n").encode() * 3000)
    cut.write_bytes(data[:-40])
    code, _, err = run(capsys, "data", "stats", "--text", str(cut))
    assert code == 1 and "expected more gzip data" in err
    source, target = tmp_path / "a.eng", tmp_path / "a.nya"
    source.write_text("1\n2\n", encoding="utf-8")
    target.write_text("1\n", encoding="utf-8")
    code, _, err = run(capsys, "data", "stats", "--parallel", str(source), "--target-file", str(target))
    assert code == 1 and "a.eng:2: expected as many lines as" in err


def test_stats_of_good_user_files(tmp_path, capsys):
    path = tmp_path / "held.txt"
    path.write_text("ལག་ཆས་ཚུ་\nལག་ཆས་ཚུ་\nTools\n", encoding="utf-8")
    code, out, _ = run(capsys, "data", "stats", "--text", str(path), "--lang", "dzo", "--json")
    stats = json.loads(out)
    assert (stats["texts"], stats["exact_duplicates"], stats["scripts"]) == (3, 1, {"Tibt": 2, "Latn": 1})
