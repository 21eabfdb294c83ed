"""Fuzz the file readers (issue #18): text, JSONL, TSV, Moses and ConceptNet CSV files with random
bytes, flipped bytes, truncations and gzip damage, from a seeded generator.

Each input is read through ``lowres data stats`` (the readers users reach first) and through the
reader ``lowres adapt`` uses. Every outcome is a result or one ``error:`` line from a
:class:`~lowres_adapters.errors.LowresError` (never the generic "run with --debug" fallback of an
unexpected exception, never a traceback), and a failed ``lowres adapt`` leaves no output folder.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Callable

import pytest
from cli_support import run_cli

from lowres_adapters.data.parallel import read_pairs_file
from lowres_adapters.data.text import read_text_file
from lowres_adapters.errors import LowresError

SEED = 18
MUTATIONS_PER_FORMAT = 40
VALID = {
    "text.txt": "Pachiyambi Mulungu adalenga kumwamba\nndi dziko lapansi.\n",
    "text.jsonl": '{"text": "Pachiyambi Mulungu"}\n{"text": "adalenga kumwamba"}\n',
    "pairs.tsv": "In the beginning\tPachiyambi\nGod created\tMulungu adalenga\n",
    "pairs.jsonl": '{"source": "In the beginning", "target": "Pachiyambi"}\n'
                   '{"source": "God created", "target": "Mulungu adalenga"}\n',
    "moses.en": "In the beginning\nGod created\n",
    "graph.csv": "/a/[/r/RelatedTo/,/c/nya/madzi/,/c/en/water/]\t/r/RelatedTo\t/c/nya/madzi\t/c/en/water\t{}\n",
}
MOSES_TARGET = "Pachiyambi\nMulungu adalenga\n"


def mutate(data: bytes, generator: random.Random) -> bytes:
    """Return one damaged variant of ``data`` (the kind chosen by ``generator``)."""
    kind = generator.randrange(8)
    if kind == 0:  # random bytes
        return bytes(generator.randrange(256) for _ in range(generator.randrange(1, 200)))
    if kind == 1:  # truncated anywhere, possibly mid UTF-8 sequence
        return data[: generator.randrange(0, len(data))]
    if kind == 2:  # flipped bytes
        damaged = bytearray(data)
        for _ in range(generator.randrange(1, 6)):
            damaged[generator.randrange(len(damaged))] = generator.randrange(256)
        return bytes(damaged)
    if kind == 3:  # NULs, tabs, quotes, braces and newlines spliced in
        damaged = bytearray(data)
        for _ in range(generator.randrange(1, 6)):
            damaged.insert(generator.randrange(len(damaged) + 1), generator.choice(b'\0\t\n\r"{}[],\\\xff'))
        return bytes(damaged)
    if kind == 4:  # invalid UTF-8 inside a line
        cut = generator.randrange(len(data))
        return data[:cut] + generator.choice([b"\xc3", b"\xff\xfe", b"\xed\xa0\x80", b"\xe2\x82"]) + data[cut:]
    if kind == 5:  # gzip data in a plain-named file
        return gzip.compress(data)
    if kind == 6:  # a very long line
        return data.rstrip(b"\n") + b"x" * generator.randrange(10_000, 200_000) + b"\n"
    return b"\n" * generator.randrange(0, 4) + b" \t " * generator.randrange(0, 3)  # blank or empty


def fuzzed_inputs(tmp_path: Path) -> list[tuple[str, Path]]:
    """Write ``MUTATIONS_PER_FORMAT`` damaged files per format (and gzip-damaged ``.gz`` ones)."""
    generator = random.Random(SEED)
    written = []
    for name, content in VALID.items():
        for index in range(MUTATIONS_PER_FORMAT):
            path = tmp_path / f"{index}-{name}"
            path.write_bytes(mutate(content.encode(), generator))
            written.append((name, path))
        compressed = gzip.compress(content.encode())
        for index in range(MUTATIONS_PER_FORMAT // 4):
            path = tmp_path / f"{index}-{name}.gz"
            path.write_bytes(compressed[: generator.randrange(1, len(compressed))])
            written.append((name, path))
    return written


def stats_args(name: str, path: Path, target: Path) -> list[str]:
    if name.startswith("text"):
        return ["data", "stats", "--text", str(path), "--lang", "nya"]
    if name.startswith("pairs"):
        return ["data", "stats", "--parallel", str(path), "--source-lang", "eng", "--target-lang", "nya"]
    if name.startswith("moses"):
        return ["data", "stats", "--parallel", str(path), "--target-file", str(target), "--source-lang", "eng",
                "--target-lang", "nya"]
    return ["data", "stats", "--graph", str(path), "--graph-source", "conceptnet_edges"]  # lowres-kg-conceptnet


def reader_for(name: str, target: Path) -> Callable[[Path], object] | None:
    if name.startswith("text"):
        return lambda path: read_text_file(path, "nya")
    if name.startswith("pairs"):
        return lambda path: read_pairs_file(path, "eng", "nya")
    if name.startswith("moses"):
        return lambda path: read_pairs_file(path, "eng", "nya", target_path=target)
    return None


def test_fuzzed_files_give_a_result_or_one_line(tmp_path: Path, capsys) -> None:
    target = tmp_path / "moses.nya"
    target.write_text(MOSES_TARGET, encoding="utf-8")
    inputs = fuzzed_inputs(tmp_path)
    outcomes = {"read": 0, "refused": 0}
    for name, path in inputs:
        code, err = run_cli(stats_args(name, path, target), capsys)
        assert code in (0, 1), (path, err)
        if code == 1:
            assert err.startswith("error: ") and err.count("\n") == 1, (path, err)
            assert "--debug" not in err and "Traceback" not in err, (path, err)
        reader = reader_for(name, target)
        if reader is not None:
            try:
                reader(path)
                outcomes["read"] += 1
            except LowresError as error:
                assert "\n" not in str(error), (path, str(error))
                outcomes["refused"] += 1
    assert len(inputs) == len(VALID) * (MUTATIONS_PER_FORMAT + MUTATIONS_PER_FORMAT // 4)
    assert outcomes["read"] and outcomes["refused"]  # the damage both passes and fails: the fuzz reaches both


def test_a_failed_adapt_on_a_damaged_file_writes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    import lowres_adapters.training.adapt

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for a damaged file")

    monkeypatch.setattr(lowres_adapters.training.adapt, "load_base_model", refuse)
    generator = random.Random(SEED + 1)
    held_out = tmp_path / "heldout.txt"
    held_out.write_text("Pachiyambi Mulungu\n", encoding="utf-8")
    refused = 0
    for index in range(20):
        damaged = tmp_path / f"train-{index}.jsonl"
        damaged.write_bytes(mutate(VALID["text.jsonl"].encode(), generator) + b"\xff{not json\n")
        output = tmp_path / f"run-{index}"
        code, err = run_cli(["adapt", "tum", "--text", str(damaged), "--eval-text", str(held_out), "--adapter", "lora",
                             "--output", str(output)], capsys)
        assert code == 1 and err.count("\n") == 1 and "--debug" not in err, err
        assert not output.exists(), err
        refused += 1
    assert refused == 20
