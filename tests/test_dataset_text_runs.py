"""``lowres adapt --text hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` streams a ``datasets`` dataset into the token
store: a saved folder trains on the batches of the same texts given as a .txt file, a data file and a
name in the local datasets cache (never the Hub) load too, a changed dataset is tokenised again, and
a missing column, split, dataset or package is one line before the model loads, with nothing written."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_support import run_cli
from test_streaming_text_runs import STEPS, Batches, batches, files  # noqa: F401 (fixtures)

import lowres_adapters.training.adapt as adapt_module
from lowres_adapters.artifact import read_tensors
from lowres_adapters.data.dataset_text import open_dataset_text

datasets = pytest.importorskip("datasets")


@pytest.fixture
def name_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name looked up (the test network guard refuses them, and ``datasets`` would then
    quietly fall back to its cache: the lookups show whether the Hub was tried at all)."""
    hosts: list[str] = []
    lookup = socket.getaddrinfo

    def recording_lookup(host, *args, **kwargs):
        hosts.append(str(host))
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_lookup)
    return hosts


def train_lines(files: dict[str, str]) -> list[str]:
    return Path(files["train"]).read_text(encoding="utf-8").splitlines()


def adapt_args(files: dict[str, str], text: str, output: Path, *extra: str) -> list[str]:
    return ["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", text, "--eval-text",
            files["held_out"], "--max-steps", str(STEPS), "--batch-size", "4", "--max-length", "48", "--lr", "1e-2",
            "--quiet", "--output", str(output), *extra]


def save_dataset(folder: Path, lines: list[str]) -> Path:
    rows = {"text": lines, "n": list(range(len(lines)))}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "test": datasets.Dataset.from_dict({"text": ["x"], "n": [0]})}).save_to_disk(str(folder))
    return folder


def token_entries(files: dict[str, str]) -> list[Path]:
    return sorted((Path(files["tmp"]) / "cache" / "tokens").glob("*/meta.json"))


def test_a_saved_dataset_trains_on_the_batches_of_the_same_text_file(files, batches, capsys, name_lookups):
    tmp = Path(files["tmp"])
    folder = save_dataset(tmp / "saved", train_lines(files))
    evaluating = ("--eval-every", "3")  # holds out the last examples: evaluated batches are recorded too
    code, err = run_cli(adapt_args(files, f"hf:{folder}:train:text", tmp / "dataset", *evaluating), capsys)
    assert code == 0, err
    assert "tokenised into the token cache" in err and len(token_entries(files)) == 1
    dataset_batches = list(batches)
    batches.clear()
    code, err = run_cli(adapt_args(files, files["train"], tmp / "file", *evaluating), capsys)
    assert code == 0, err
    assert batches == dataset_batches  # the same rows (packing, held-out tail), in the same order
    expected, found = read_tensors(tmp / "file"), read_tensors(tmp / "dataset")
    assert all(torch.equal(expected[name], found[name]) for name in expected)
    assert json.loads((tmp / "dataset" / "lowres_adapter.json").read_text())["datasets"] == ["saved"]
    code, err = run_cli(adapt_args(files, f"hf:{folder}", tmp / "again"), capsys)  # split and column: defaults
    assert code == 0 and "token cache reused" in err, err
    assert not name_lookups


def test_max_train_examples_stops_the_pass_and_keeps_the_files_first_examples(files, batches, capsys):
    tmp = Path(files["tmp"])
    folder = save_dataset(tmp / "saved", train_lines(files))
    first = ("--max-train-examples", "20", "--eval-every", "3")
    code, err = run_cli(adapt_args(files, f"hf:{folder}", tmp / "dataset", *first), capsys)
    assert code == 0, err
    (meta,) = token_entries(files)
    assert json.loads(meta.read_text())["examples"] == 20  # the rows after the 20th texts are not tokenised
    dataset_batches = list(batches)
    batches.clear()
    code, err = run_cli(adapt_args(files, files["train"], tmp / "file", *first), capsys)
    assert code == 0 and batches == dataset_batches, err


def test_a_json_data_file_streams_and_a_changed_file_is_tokenised_again(files, batches, capsys, name_lookups):
    tmp = Path(files["tmp"])
    data = tmp / "rows.jsonl"
    data.write_text("".join(json.dumps({"body": line}) + "\n" for line in train_lines(files)), encoding="utf-8")
    code, err = run_cli(adapt_args(files, f"hf:{data}:train:body", tmp / "first"), capsys)
    assert code == 0 and "tokenised into the token cache" in err, err
    assert len(batches) == STEPS
    data.write_text(data.read_text(encoding="utf-8") + json.dumps({"body": "Mawu atsopano."}) + "\n", encoding="utf-8")
    code, err = run_cli(adapt_args(files, f"hf:{data}:train:body", tmp / "second"), capsys)
    assert code == 0 and "tokenised into the token cache" in err, err
    assert len(token_entries(files)) == 2 and not name_lookups  # the Hub is not told of the load either


def test_a_changed_saved_dataset_has_another_content_key(tmp_path):
    first = open_dataset_text(f"hf:{save_dataset(tmp_path / 'a', ['one', 'two'])}", "nya")
    again = open_dataset_text(f"hf:{tmp_path / 'a'}", "nya")
    changed = open_dataset_text(f"hf:{save_dataset(tmp_path / 'b', ['one', 'three'])}", "nya")
    assert first.content_key == again.content_key != changed.content_key
    assert [e.text for e in first] == ["one", "two"]


def cache_dataset(cache: Path, name: str, lines: list[str], data: Path) -> None:
    """Put ``lines`` in a datasets cache as the Hub dataset ``name`` is laid out there once loaded."""
    data.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines), encoding="utf-8")
    with pytest.MonkeyPatch.context() as offline:  # no download count sent to the Hub
        offline.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        datasets.load_dataset("json", data_files=str(data), cache_dir=str(cache / "build"))
    (built,) = [path for path in glob.glob(str(cache / "build" / "json" / "*" / "*" / "*")) if os.path.isdir(path)]
    target = cache / name.replace("/", "___") / "default" / "0.0.0" / Path(built).name
    shutil.copytree(built, target)
    (arrow,) = target.glob("json-train*.arrow")
    arrow.rename(target / arrow.name.replace("json-", f"{name.split('/')[-1]}-"))


def test_a_dataset_name_is_found_in_the_local_cache_only(files, batches, capsys, monkeypatch, name_lookups):
    tmp = Path(files["tmp"])
    cache_dataset(tmp / "hf-datasets", "org/corpus", train_lines(files), tmp / "corpus.jsonl")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp / "hf-datasets"))
    code, err = run_cli(adapt_args(files, "hf:org/corpus", tmp / "cached"), capsys)
    assert code == 0, err
    assert len(batches) == STEPS and not name_lookups
    assert datasets.config.HF_HUB_OFFLINE is False  # offline only while loading
    code, err = run_cli(adapt_args(files, "hf:org/other", tmp / "other"), capsys)
    assert code == 1 and "no dataset of that name in the local datasets cache" in err and not name_lookups, err


@pytest.mark.parametrize("text, message", [
    ("hf:{saved}:train:body", "no column 'body'; columns: text, n"),
    ("hf:{saved}:validation", "no split 'validation'; splits: train, test"),
    ("hf:{tmp}/rows.jsonl:test", "a data file has one split, 'train', not 'test'"),
    ("hf:{tmp}/rows.xml", "expected a data file ending in .json, .jsonl, .txt, .csv, .parquet"),
    ("hf:org/not-cached", "no dataset of that name in the local datasets cache (the Hub is not contacted)"),
    ("hf:a:b:c:d", "expected hf:PATH_OR_NAME[:SPLIT[:COLUMN]]"),
    ("hf:{saved}", "needs the `datasets` package: pip install 'lowres-adapters[datasets]'"),
])
def test_a_bad_dataset_is_one_line_before_the_model_loads(files, capsys, monkeypatch, text, message):
    tmp = Path(files["tmp"])
    save_dataset(tmp / "saved", train_lines(files))
    (tmp / "rows.jsonl").write_text('{"text": "Mawu."}\n', encoding="utf-8")
    (tmp / "rows.xml").write_text("<rows/>\n", encoding="utf-8")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp / "empty-cache"))
    if "package" in message:
        monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    loaded: list[str] = []
    monkeypatch.setattr(adapt_module, "load_base_model", lambda *args, **kwargs: loaded.append("model"))
    capsys.readouterr()  # the progress bars of save_to_disk above
    code, err = run_cli(adapt_args(files, text.format(saved=tmp / "saved", tmp=tmp), tmp / "run"), capsys)
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not loaded and not (tmp / "run").exists() and not token_entries(files)


def test_two_processes_tokenise_the_dataset_once_and_match_one_process(tmp_path):
    """``accelerate launch`` on two CPU processes: the main process writes the token store entry, the
    other reads it after the barrier; the run's figures are the one-process run's."""
    from test_training_distributed import accelerate_command
    from training_support import save_tiny_model, write_corpus

    model = save_tiny_model(tmp_path / "model")
    train_file, held_out = write_corpus(tmp_path)
    folder = save_dataset(tmp_path / "saved", train_file.read_text(encoding="utf-8").splitlines())
    args = ["adapt", "tum", "--model", str(model), "--adapter", "lora", "--text", f"hf:{folder}", "--eval-text",
            str(held_out), "--max-steps", "3", "--batch-size", "4", "--lr", "1e-2", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOWRES_CACHE": str(tmp_path / "cache")}
    one = subprocess.run([sys.executable, "-m", "lowres_adapters.cli", *args, "-o", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    shutil.rmtree(tmp_path / "cache" / "tokens")  # the two processes start without the entry
    two = subprocess.run(
        [*accelerate_command(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lowres_adapters.cli", *args,
         "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stderr.count("tokenised into the token cache") == 1 and "token cache reused" not in two.stderr
    figures = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "two")]
    assert figures[1]["adapted"]["bits_per_char"] == pytest.approx(figures[0]["adapted"]["bits_per_char"], rel=1e-5)
