"""A ``--text`` file tokenised segment by segment in the background: the segments join to the whole file's
tokens, training starts on the first segment, the batch order is a function of the file and the seed
only (a slow pass changes no batch), a killed run resumes on the uninterrupted batches, a stopped
pass keeps its finished segments, and a bad line late in the file is refused before the model loads."""

from __future__ import annotations

import gzip
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from cli_support import run_cli
from training_support import install_toy_registry, record_training_batches, save_tiny_model

import lowres_adapters.training.adapt as adapt_module
import lowres_adapters.training.token_segments as segments_module
from lowres_adapters.artifact import read_tensors
from lowres_adapters.data.text import read_text_file
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_tokenizer
from lowres_adapters.training.batching import tokenize_for_clm
from lowres_adapters.training.checkpoint import LoopState
from lowres_adapters.training.segment_features import SegmentedFeatures
from lowres_adapters.training.token_segments import SegmentedStore, close_open_stores

FIRST_CHARS = 1500  # ~27 lines in the first segment, then 3000, 6000...: 4 segments of the 200-line file
STEPS = 10


def write_lines(path: Path, count: int = 200) -> Path:
    lines = [f"{index}. {TINY_CORPUS[index % len(TINY_CORPUS)]}" for index in range(count)]
    lines[7] = ""  # blank lines are skipped, as the in-memory path skips them
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture(autouse=True)
def stop_passes(monkeypatch):
    monkeypatch.setattr(segments_module, "BACKGROUND", "thread")  # so a test can slow or hold the pass back
    yield
    close_open_stores()


def open_store(path: Path, root: Path, **kwargs) -> SegmentedStore:
    return SegmentedStore(path, tiny_tokenizer(), tokenize_for_clm, 48, root=root, first_segment_chars=FIRST_CHARS,
                          **kwargs)


def all_segments(store: SegmentedStore) -> list:
    found, index = [], 0
    while (segment := store.segment(index)) is not None:
        found.append(segment)
        index += 1
    return found


@pytest.mark.parametrize("name, background", [("corpus.txt", "process"), ("corpus.txt.gz", "thread")])
def test_segments_cut_at_line_ends_and_join_to_the_whole_files_tokens(tmp_path, monkeypatch, name, background):
    monkeypatch.setattr(segments_module, "BACKGROUND", background)
    corpus = write_lines(tmp_path / name)
    expected = tokenize_for_clm(tiny_tokenizer(), [e.text for e in read_text_file(corpus, "nya")], 48)
    store = open_store(corpus, tmp_path / "cache")
    segments = all_segments(store)
    assert len(segments) == store.count == 4 and store.complete and not store.from_cache
    assert [row for segment in segments for row in segment] == expected
    texts = [e.text for e in read_text_file(corpus, "nya")]
    first = len(segments[0])  # the first segment ends with the line that reaches FIRST_CHARS characters
    assert sum(map(len, texts[:first - 1])) < FIRST_CHARS <= sum(map(len, texts[:first]))
    again = open_store(corpus, tmp_path / "cache")
    assert again.from_cache and [row for segment in all_segments(again) for row in segment] == expected


def test_a_stopped_pass_keeps_its_finished_segments_and_the_next_one_continues(tmp_path, monkeypatch):
    corpus = write_lines(tmp_path / "corpus.txt")
    reference = [list(s) for s in all_segments(open_store(corpus, tmp_path / "reference"))]
    written: list[str] = []
    write = segments_module._write

    def write_until_stopped(staging, texts, *args):
        name = staging.name.split(".")[1]
        if name == "segment-00002" and not written.count("resumed"):
            while not store._stop.is_set():  # the run ends (closes the store) while this segment is due
                time.sleep(0.01)
        written.append(name)
        return write(staging, texts, *args)

    monkeypatch.setattr(segments_module, "_write", write_until_stopped)
    store = open_store(corpus, tmp_path / "cache")
    assert list(store.segment(1)) == reference[1]
    store.close()
    entry = store.entry
    assert sorted(path.name for path in entry.iterdir()) == ["segment-00000", "segment-00001"]  # no staging left
    written.append("resumed")
    later = open_store(corpus, tmp_path / "cache")
    assert [list(s) for s in all_segments(later)] == reference
    assert written[written.index("resumed") + 1:] == ["segment-00002", "segment-00003"]  # only what was missing


def test_a_pass_in_a_child_process_stops_with_the_run_and_the_next_run_completes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(segments_module, "BACKGROUND", "process")
    corpus = write_lines(tmp_path / "corpus.txt", count=600)
    reference = [list(s) for s in all_segments(open_store(corpus, tmp_path / "reference"))]
    store = open_store(corpus, tmp_path / "cache")
    assert list(store.segment(1)) == reference[1]
    store.close()  # wherever the child was: its unfinished segment is discarded
    assert not store._worker.is_alive()
    assert all(path.name.startswith("segment-") for path in store.entry.iterdir())
    assert [list(s) for s in all_segments(open_store(corpus, tmp_path / "cache"))] == reference


def rows_of_epochs(features: SegmentedFeatures, seed: int, epochs: int = 2, batch: int = 5) -> list[list[int]]:
    order, state, seen = features.batch_order(seed), LoopState(), []
    while state.epoch < epochs:
        seen.append(order.next_batch(state, batch))
    return seen


def test_the_order_is_segment_by_segment_and_a_function_of_the_file_and_seed(tmp_path, monkeypatch):
    corpus = write_lines(tmp_path / "corpus.txt")
    fast, _ = SegmentedFeatures.with_held_out(open_store(corpus, tmp_path / "fast"), evaluate=True)
    fast_rows = rows_of_epochs(fast.packed(48), seed=3)
    write = segments_module._write
    monkeypatch.setattr(segments_module, "_write", lambda *args: time.sleep(0.3) or write(*args))  # a slow pass
    slow, validation = SegmentedFeatures.with_held_out(open_store(corpus, tmp_path / "slow"), evaluate=True)
    assert rows_of_epochs(slow.packed(48), seed=3) == fast_rows
    assert rows_of_epochs(slow.packed(48), seed=4) != fast_rows
    packed = slow.packed(48)
    flat = [row for batch in fast_rows for row in batch][:len(packed)]  # the first epoch
    assert sorted(flat) == list(range(len(packed)))
    starts = [packed.part_at(0)[1]] + [packed.part_at(packed._starts[k])[1] for k in range(1, 4)]
    segment_of = [sum(row >= start for start in starts) - 1 for row in flat]
    assert segment_of == sorted(segment_of) and segment_of[-1] == 3  # segments in file order
    first = all_segments(slow.store)[0]  # the held-out examples: the first segment's last 5%
    assert len(validation) == int(len(first) * 0.05) >= 1
    assert list(validation) == [first[i] for i in range(len(first) - len(validation), len(first))]
    assert len(slow) == sum(len(s) for s in all_segments(slow.store)) - len(validation)


# ----------------------------------------------------------------- through the CLI
@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    install_toy_registry()
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(segments_module, "FIRST_SEGMENT_CHARS", FIRST_CHARS)
    train = write_lines(tmp_path / "train.txt")
    held_out = tmp_path / "heldout.txt"
    held_out.write_text("\n".join(TINY_CORPUS[:3]) + "\n", encoding="utf-8")
    return {"model": str(save_tiny_model(tmp_path / "model")), "train": str(train), "held_out": str(held_out),
            "tmp": str(tmp_path)}


def adapt_args(files: dict[str, str], output: Path, *extra: str) -> list[str]:
    return ["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"], "--eval-text",
            files["held_out"], "--max-steps", str(STEPS), "--batch-size", "4", "--max-length", "48", "--lr", "1e-2",
            "--eval-every", "4", "--save-every", "3", "--quiet", "--output", str(output), *extra]


class Recorder:
    """The batches the runs of a test collate (rows' ids), whether training had started, and a crash step."""

    def __init__(self) -> None:
        self.batches: list[list[list[int]]] = []
        self.training_started = threading.Event()
        self.crash_at = 0

    def append(self, batch: list[list[int]]) -> None:
        self.batches.append(batch)
        self.training_started.set()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    seen = Recorder()
    record_training_batches(monkeypatch, seen)
    return seen


def test_training_starts_on_the_first_segment_and_a_killed_run_resumes_on_the_same_batches(
        files, recorder, capsys, monkeypatch):
    tmp = Path(files["tmp"])
    code, err = run_cli(adapt_args(files, tmp / "reference"), capsys)
    assert code == 0, err
    assert "vocabulary trim: the first segment" in err  # four segments: later ids widen each batch
    reference = list(recorder.batches)
    close_open_stores()

    monkeypatch.setenv("LOWRES_CACHE", str(tmp / "slow-cache"))  # a first run again, with a pass held back
    write, before_training = segments_module._write, []

    def write_after_training_starts(staging, *args):
        if "segment-00000" not in staging.name:
            before_training.append(recorder.training_started.is_set())
            recorder.training_started.wait(120)  # a failing run must not hang the test
        return write(staging, *args)

    monkeypatch.setattr(segments_module, "_write", write_after_training_starts)
    recorder.batches.clear()
    recorder.training_started.clear()
    recorder.crash_at = 5
    code, err = run_cli(adapt_args(files, tmp / "run"), capsys)
    assert code != 0 and recorder.batches == reference[:len(recorder.batches)], err  # with the step-4 evaluation
    assert len(recorder.batches) > 5
    assert before_training[0] is False  # segment 1 was due before the first batch, and waited for it
    close_open_stores()
    recorder.batches.clear()
    recorder.crash_at = 0
    code, err = run_cli(adapt_args(files, tmp / "run"), capsys)
    assert code == 0 and "resuming the unfinished run" in err, err
    assert recorder.batches == reference[3:]  # from the step-3 checkpoint on
    expected, found = read_tensors(tmp / "reference"), read_tensors(tmp / "run")
    assert all(torch.equal(expected[name], found[name]) for name in expected)


def test_a_bad_line_late_in_the_file_is_one_line_before_the_model_loads(files, capsys, monkeypatch):
    path = Path(files["train"])
    lines = path.read_bytes().split(b"\n")
    lines[189] = b"\xff late damage"
    path.write_bytes(b"\n".join(lines))
    loaded: list[str] = []
    monkeypatch.setattr(adapt_module, "load_base_model", lambda *args, **kwargs: loaded.append("model"))
    code, err = run_cli(adapt_args(files, Path(files["tmp"]) / "run"), capsys)
    assert code == 1 and err.count("\n") == 1 and "train.txt:190: expected UTF-8 text" in err, err
    assert not loaded and not (Path(files["tmp"]) / "cache" / "tokens").exists()


def test_a_failing_child_pass_is_reported_as_one_line(tmp_path, monkeypatch):
    corpus = write_lines(tmp_path / "corpus.txt")
    store = open_store(corpus, tmp_path / "cache")  # thread mode: segment 1 written here, then the rest
    close_open_stores()
    gone = segments_module._SegmentPass(tmp_path / "missing.txt", *(getattr(store._pass, name) for name in (
        "tokenizer", "tokenize_function", "max_length", "entry", "first_chars", "content", "variant")))
    child = segments_module._ChildPass(gone)
    child._process.wait(120)
    assert "missing.txt" in child.error() and "\n" not in child.error()
    for folder in store.entry.glob("segment-0000[1-9]"):  # as if the child had stopped after segment 1
        shutil.rmtree(folder)
    store._worker, store._segments = child, store._segments[:1]
    with pytest.raises(LowresError, match="missing.txt"):
        store.segment(3)
