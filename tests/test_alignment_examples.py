"""The transfer examples run (on a tiny model and files made here; the real defaults need the packs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lowres_adapters.testing.tiny import TINY_CORPUS
from test_vocabulary_extension import tibetan_like_text
from training_support import save_tiny_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_prompt_align_example_runs(tmp_path, capsys):
    model_dir = save_tiny_model(tmp_path / "model")
    pairs = [f"{english}\t{chichewa}" for english, chichewa in zip(TINY_CORPUS[1::2], TINY_CORPUS[0::2])]
    (tmp_path / "train.tsv").write_text("\n".join(pairs * 4) + "\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    metrics = load_example("prompt_align").main([
        "--language", "tum", "--model", str(model_dir), "--pairs", str(tmp_path / "train.tsv"),
        "--eval-pairs", str(tmp_path / "test.tsv"), "--max-examples", "8", "--max-steps", "2",
        "--output", str(tmp_path / "run")])
    assert "align_retrieval_top1" in metrics["adapted"]
    assert "align_cosine:" in capsys.readouterr().out


def test_vocabulary_extension_example_runs(tmp_path, capsys):
    model_dir = save_tiny_model(tmp_path / "model")
    lines = tibetan_like_text(200, seed=1)
    (tmp_path / "train.txt").write_text("\n".join(lines[:160]) + "\n", encoding="utf-8")
    (tmp_path / "held.txt").write_text("\n".join(lines[160:]) + "\n", encoding="utf-8")
    figures = load_example("vocabulary_extension").main([
        "--model", str(model_dir), "--text", str(tmp_path / "train.txt"), "--eval-text", str(tmp_path / "held.txt"),
        "--tokens", "60", "--steps", "2"])
    assert figures["after"] < figures["before"] and figures["added"] == 60
    assert figures["restored_same"] is True
    assert "tokens per character" in capsys.readouterr().out


def test_custom_alignment_loss_example_registers_and_trains(tmp_path, capsys):
    figures = load_example("custom_alignment_loss").main()
    assert figures["value"] == pytest.approx(2.0)
    assert {"l1", "mse", "cosine", "kl", "infonce"} <= set(figures["names"])
    model_dir = save_tiny_model(tmp_path / "model")  # the plugin loss drives a real run
    pairs = [f"{english}\t{chichewa}" for english, chichewa in zip(TINY_CORPUS[1::2], TINY_CORPUS[0::2])]
    (tmp_path / "pairs.tsv").write_text("\n".join(pairs * 3) + "\n", encoding="utf-8")
    metrics = load_example("prompt_align").main([
        "--language", "tum", "--model", str(model_dir), "--pairs", str(tmp_path / "pairs.tsv"),
        "--eval-pairs", str(tmp_path / "pairs.tsv"), "--align-loss", "l1", "--max-steps", "2",
        "--output", str(tmp_path / "run")])
    assert "align_loss_l1" in metrics["adapted"]
