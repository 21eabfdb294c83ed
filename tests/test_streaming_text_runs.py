"""``lowres adapt --text FILE`` streams the file into the token store: it trains as the in-memory path
did, reuses the store, resumes a killed run on exactly the batches of an uninterrupted one, and
refuses a bad file in one line (file and line) before any model loads."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from cli_support import run_cli
from training_support import install_toy_registry, record_training_batches, save_tiny_model

import lowres_adapters.training.adapt as adapt_module
from lowres_adapters.artifact import read_tensors
from lowres_adapters.data.files import check_text_file
from lowres_adapters.errors import InputError
from lowres_adapters.testing.tiny import TINY_CORPUS

STEPS = 8


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    install_toy_registry()
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))  # the token store of these runs only
    model_dir = save_tiny_model(tmp_path / "model")
    long_line = " ".join(TINY_CORPUS)  # longer than a row: split into row-sized pieces
    lines = [f"{index}. {text}" for index in range(6) for text in (*TINY_CORPUS, "", long_line)]
    train, held_out = tmp_path / "train.txt", tmp_path / "heldout.txt"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    held_out.write_text("\n".join(TINY_CORPUS[:3]) + "\n", encoding="utf-8")
    return {"model": str(model_dir), "train": str(train), "held_out": str(held_out), "tmp": str(tmp_path)}


def adapt_args(files: dict[str, str], output: Path, *extra: str) -> list[str]:
    return ["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"], "--eval-text",
            files["held_out"], "--max-steps", str(STEPS), "--batch-size", "4", "--max-length", "48", "--lr", "1e-2",
            "--quiet", "--output", str(output), *extra]


class Batches(list):
    """Every batch the runs of a test collate (the rows' ids), in order; ``crash_at`` interrupts a run
    after that step."""

    crash_at = 0


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Batches:
    seen = Batches()
    record_training_batches(monkeypatch, seen)
    return seen


def test_a_text_file_trains_through_the_token_store_as_the_in_memory_path(files, batches, capsys):
    tmp = Path(files["tmp"])
    evaluating = ("--eval-every", "3")  # holds out the file's last examples: evaluated batches are recorded too
    code, err = run_cli(adapt_args(files, tmp / "store", *evaluating), capsys)
    assert code == 0, err
    assert "tokenised into the token cache" in err
    store_batches = list(batches)
    (entry,) = [meta.parent for meta in (tmp / "cache" / "tokens").glob("*/segment-00000/meta.json")]
    assert {"ids.bin", "lengths.bin", "vocabulary.npy"} <= {path.name for path in entry.iterdir()}
    batches.clear()
    code, err = run_cli(adapt_args(files, tmp / "in-memory", *evaluating, "--set", "loop.token_cache=false"), capsys)
    assert code == 0, err
    assert batches == store_batches  # the same rows (packing, held-out tail), in the same order
    assert any(len(row) > 1 for batch in store_batches for row in batch)
    expected, found = read_tensors(tmp / "in-memory"), read_tensors(tmp / "store")
    assert all(torch.equal(expected[name], found[name]) for name in expected)
    code, err = run_cli(adapt_args(files, tmp / "again"), capsys)
    assert code == 0 and "token cache reused" in err, err


def test_a_killed_run_resumes_on_the_uninterrupted_batches(files, batches, capsys):
    tmp = Path(files["tmp"])
    code, err = run_cli(adapt_args(files, tmp / "reference", "--save-every", "3"), capsys)
    assert code == 0, err
    reference = list(batches)
    assert len(reference) == STEPS
    batches.clear()
    batches.crash_at = 5
    code, err = run_cli(adapt_args(files, tmp / "run", "--save-every", "3"), capsys)
    assert code != 0 and len(batches) == 5, err  # interrupted after step 5
    assert batches == reference[:5]
    batches.clear()
    batches.crash_at = 0
    code, err = run_cli(adapt_args(files, tmp / "run", "--save-every", "3"), capsys)  # the same command
    assert code == 0 and "resuming the unfinished run" in err, err
    assert batches == reference[3:]
    expected, found = read_tensors(tmp / "reference"), read_tensors(tmp / "run")
    assert all(torch.equal(expected[name], found[name]) for name in expected)


@pytest.mark.parametrize("name, content, message", [
    ("train.txt", b"good line\nanother\n\xff\xfe bad\n",
     "train.txt:3: expected UTF-8 text, found invalid byte 0xff at column 1"),
    ("train.txt", b"\n  \n\n", "train.txt:1: expected at least one line of text, found an empty file"),
    ("train.jsonl", b'{"text": "Mawu."}\n{"text": 3}\n', "train.jsonl:2: expected a JSON object with a string field"),
])
def test_a_bad_text_file_is_one_line_before_the_model_loads(files, capsys, monkeypatch, name, content, message):
    files["train"] = str(Path(files["tmp"]) / name)
    Path(files["train"]).write_bytes(content)
    loaded: list[str] = []
    monkeypatch.setattr(adapt_module, "load_base_model", lambda *args, **kwargs: loaded.append("model"))
    code, err = run_cli(adapt_args(files, Path(files["tmp"]) / "run"), capsys)
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not loaded and not (Path(files["tmp"]) / "run").exists()


def test_the_file_check_names_the_line_across_chunks_and_in_gz(tmp_path):
    path = tmp_path / "corpus.txt"
    lines = ["Mawu a Mulungu ndi ŵa moyo."] * 50 + ["bad \udcff here"] + ["Amen."]
    path.write_bytes("\n".join(lines).encode("utf-8", errors="surrogateescape") + b"\n")
    with pytest.raises(InputError, match=r"corpus.txt:51: expected UTF-8 text"):
        check_text_file(path, chunk_bytes=7)  # chunks split the two-byte letters: not an error
    good = tmp_path / "good.txt"
    good.write_text("\n".join(lines[:50]) + "\n", encoding="utf-8")
    assert check_text_file(good, chunk_bytes=7) == check_text_file(good)
    packed = tmp_path / "corpus.txt.gz"
    packed.write_bytes(gzip.compress(path.read_bytes())[:-20])
    with pytest.raises(InputError, match=r"corpus.txt.gz:\d+: expected"):
        check_text_file(packed)


def test_an_unchanged_file_is_checked_once_and_a_changed_one_again(tmp_path, monkeypatch):
    import lowres_adapters.data.files as files_module
    from lowres_adapters.data.text import open_text_file

    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    checks: list[Path] = []
    check = files_module.check_text_file
    monkeypatch.setattr(files_module, "check_text_file", lambda path: checks.append(path) or check(path))
    path = tmp_path / "corpus.txt"
    path.write_text("Mawu.\nAmen.\n", encoding="utf-8")
    first = open_text_file(path, "nya")
    assert open_text_file(path, "nya").sha256 == first.sha256 and len(checks) == 1
    assert [example.text for example in first] == ["Mawu.", "Amen."]
    path.write_bytes(b"Mawu.\n\xff\n")  # another size and time: checked again, and refused
    with pytest.raises(InputError, match="corpus.txt:2: expected UTF-8"):
        open_text_file(path, "nya")
    assert len(checks) == 2
