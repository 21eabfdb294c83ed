"""Fault injection on run folders (issue #18, items 5, 6, 7 and 9): finished runs are never lost,
unfinished ones are never taken for finished, outputs are checked before anything loads, and a
resume either continues exactly the run it resumes or is refused.

The kill -9 loop kills a checkpointed tiny run at seeded random steps (``KILLS`` times, each
resume killed again later), checks after every kill that ``evaluate``, ``load`` and ``publish``
refuse the folder, and ends bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import run_cli
import torch
from training_support import install_toy_registry, save_tiny_model, write_corpus

from lowres_adapters import hub
from lowres_adapters.artifact import UNFINISHED_FILE, read_tensors
from lowres_adapters.errors import LowresError

KILLS = 3
STEPS = 12
SAVE_EVERY = 2
_CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from training_support import install_toy_registry
install_toy_registry()
import lowres_adapters.training.adapt as adapt_module
kill_at = int(os.environ.get("KILL_AT_STEP", "0"))
original = adapt_module.train

def train(job, settings, run_dir=None, **kwargs):
    def kill(report):
        if report.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return original(job, settings, run_dir, **{{**kwargs, "callbacks": [*kwargs.get("callbacks", ()), kill]}})

adapt_module.train = train
from lowres_adapters.cli import main
main(sys.argv[1:])
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    install_toy_registry()
    model_dir = save_tiny_model(tmp_path / "model")
    train, held_out = write_corpus(tmp_path)
    return {"model": str(model_dir), "train": str(train), "held_out": str(held_out)}


def adapt_args(files: dict[str, str], output: Path, *extra: str) -> list[str]:
    return ["adapt", "tum", "--model", files["model"], "--adapter", "toy", "--text", files["train"], "--eval-text",
            files["held_out"], "--max-steps", str(STEPS), "--batch-size", "4", "--lr", "1e-2", "--save-every",
            str(SAVE_EVERY), "--quiet", "--output", str(output), *extra]


def run_child(args: list[str], kill_at: int = 0) -> subprocess.CompletedProcess:
    code = _CHILD.format(tests=str(Path(__file__).parent))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "KILL_AT_STEP": str(kill_at)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                          timeout=600)


def assert_refused_everywhere(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """evaluate, load and publish each refuse an unfinished folder in one line."""
    code, err = run_cli(["evaluate", str(run_dir)], capsys)
    assert code == 1 and err.count("\n") == 1 and "unfinished run" in err, err
    with pytest.raises(LowresError, match="unfinished run"):
        hub.load(str(run_dir))
    with pytest.raises(LowresError, match="unfinished run"):
        hub.publish_files(run_dir)


def test_kill_9_at_random_steps_then_resume_is_bit_identical(files, tmp_path: Path, capsys) -> None:
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the children run
    try:
        for args in (adapt_args(files, reference), adapt_args(files, run_dir, "--max-steps", "2")):
            code, err = run_cli(args, capsys)  # the reference, and a finished run the killed one replaces
            assert code == 0, err
    finally:
        torch.set_num_threads(threads)
    kill_steps = sorted(random.Random(18).sample(range(1, STEPS), KILLS))
    for index, step in enumerate(kill_steps):
        extra = ("--overwrite",) if index == 0 else ("--resume",)
        killed = run_child(adapt_args(files, run_dir, *extra), kill_at=step)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert (run_dir / UNFINISHED_FILE).exists()
        assert_refused_everywhere(run_dir, capsys)
    resumed = run_child(adapt_args(files, run_dir, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert not (run_dir / UNFINISHED_FILE).exists()
    expected, found = read_tensors(reference), read_tensors(run_dir)
    assert set(expected) == set(found) and all(torch.equal(expected[name], found[name]) for name in expected)
    metrics = [json.loads((folder / "metrics.json").read_text())["adapted"] for folder in (reference, run_dir)]
    assert metrics[0]["bits_per_char"] == metrics[1]["bits_per_char"]
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert max(record["step"] for record in log if record.get("event") == "train") == STEPS


def test_a_finished_run_is_not_replaced_without_overwrite(files, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, err = run_cli(adapt_args(files, run_dir, "--max-steps", "2"), capsys)
    assert code == 0, err
    before = {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}
    code, err = run_cli(adapt_args(files, run_dir), capsys)
    assert code == 1 and err.count("\n") == 1 and "holds a finished run: pass --overwrite" in err
    assert {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()} == before
    code, err = run_cli(adapt_args(files, run_dir, "--overwrite"), capsys)
    assert code == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["training"]["steps"] == STEPS


@pytest.mark.parametrize("output", ["a-file", "a-file/run"])
def test_an_output_that_cannot_be_a_folder_fails_before_anything_loads(files, tmp_path: Path, capsys, monkeypatch,
                                                                        output: str) -> None:
    import lowres_adapters.training.adapt as adapt_module

    loaded: list[str] = []
    monkeypatch.setattr(adapt_module, "load_base_model", lambda *args, **kwargs: loaded.append("model"))
    monkeypatch.setattr(adapt_module, "load_run_data", lambda *args, **kwargs: loaded.append("data"))
    (tmp_path / "a-file").write_text("not a folder\n")
    code, err = run_cli(adapt_args(files, tmp_path / output), capsys)
    assert code == 1 and err.count("\n") == 1 and "--output" in err and not loaded, err
    assert (tmp_path / "a-file").read_text() == "not a folder\n"


def interrupted_run(files: dict[str, str], run_dir: Path, capsys, monkeypatch, at_step: int = 5) -> None:
    """Leave an unfinished run with checkpoints (Ctrl-C at ``at_step``)."""
    import lowres_adapters.training.adapt as adapt_module

    original = adapt_module.train

    def train(job, settings, run_dir=None, **kwargs):
        def interrupt(report):
            if report.step == at_step:
                raise KeyboardInterrupt
        return original(job, settings, run_dir, **{**kwargs, "callbacks": [*kwargs.get("callbacks", ()), interrupt]})

    monkeypatch.setattr(adapt_module, "train", train)
    code, err = run_cli(adapt_args(files, run_dir), capsys)
    monkeypatch.setattr(adapt_module, "train", original)
    assert code == 130, err


def test_resume_with_changed_settings_is_refused_naming_each(files, tmp_path: Path, capsys, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    interrupted_run(files, run_dir, capsys, monkeypatch)
    checkpoints = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    code, err = run_cli(adapt_args(files, run_dir, "--resume", "--lr", "0.5", "--batch-size", "2", "--max-steps",
                                   "20"), capsys)
    assert code == 1 and err.count("\n") == 1, err
    for difference in ("loop.lr: 0.01 -> 0.5", "loop.batch_size: 4 -> 2", "loop.max_steps: 12 -> 20"):
        assert difference in err
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == checkpoints
    code, err = run_cli(adapt_args(files, run_dir, "--resume"), capsys)
    assert code == 0, err
    settings = json.loads((run_dir / "run_config.json").read_text())["loop"]
    assert (settings["lr"], settings["batch_size"], settings["max_steps"]) == (0.01, 4, STEPS)


def test_resume_without_a_checkpoint_says_so(files, tmp_path: Path, capsys) -> None:
    code, err = run_cli(adapt_args(files, tmp_path / "fresh", "--resume"), capsys)
    assert code == 0, err
    assert f"--resume: no checkpoint in {tmp_path / 'fresh'}; starting from step 0" in err


def test_unfinished_run_without_checkpoints_starts_over_and_old_files_go(files, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, err = run_cli(adapt_args(files, run_dir, "--max-steps", "2"), capsys)
    assert code == 0, err
    (run_dir / UNFINISHED_FILE).write_text("{}")  # as a run killed before its first checkpoint leaves it
    assert_refused_everywhere(run_dir, capsys)
    code, err = run_cli(adapt_args(files, run_dir), capsys)
    assert code == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["training"]["steps"] == STEPS


def test_rerunning_the_command_of_an_interrupted_run_resumes_it(files, tmp_path: Path, capsys, monkeypatch) -> None:
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    code, err = run_cli(adapt_args(files, reference), capsys)
    assert code == 0, err
    interrupted_run(files, run_dir, capsys, monkeypatch)
    code, err = run_cli(adapt_args(files, run_dir), capsys)  # the same command, no --resume
    assert code == 0, err
    assert f"resuming the unfinished run in {run_dir}" in err
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [record["resumed_from"] for record in log if record.get("event") == "start"][-1] is not None
    expected, found = read_tensors(reference), read_tensors(run_dir)
    assert set(expected) == set(found) and all(torch.equal(expected[name], found[name]) for name in expected)


def test_rerunning_an_interrupted_run_with_other_settings_is_refused(files, tmp_path: Path, capsys,
                                                                      monkeypatch) -> None:
    run_dir = tmp_path / "run"
    interrupted_run(files, run_dir, capsys, monkeypatch)
    checkpoints = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    code, err = run_cli(adapt_args(files, run_dir, "--lr", "0.5"), capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "unfinished run with other settings: loop.lr: 0.01 -> 0.5" in err and "--overwrite" in err
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == checkpoints
