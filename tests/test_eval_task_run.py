"""``evaluate_run`` on a task run (trained head on a tiny model) reproduces the run's task scores."""

from __future__ import annotations

import json

import pytest

import lowres_adapters.runs.evaluate as evaluate_module
import lowres_adapters.training.adapt as adapt_module
from lowres_adapters.data.examples import LabeledExample, PackData, TaskData, TextExample
from lowres_adapters.runs.evaluate import evaluate_run
from lowres_adapters.testing.tiny import TINY_CORPUS
from lowres_adapters.training.adapt import adapt
from training_support import save_tiny_model

SENTENCES = [LabeledExample(text=text, label="nya" if index % 2 == 0 else "eng", id=str(index))
             for index, text in enumerate(TINY_CORPUS)]


def test_task_figures_come_from_the_trained_head(tmp_path, monkeypatch):
    task = TaskData(kind="sequence_classification", labels=("eng", "nya"),
                    splits={"train": SENTENCES * 4, "test": SENTENCES})
    text = [TextExample(sentence, str(index), "xyz") for index, sentence in enumerate(TINY_CORPUS)]
    pack = PackData(text={"train": text * 4, "test": text}, tasks={"topic": task})
    monkeypatch.setattr(adapt_module, "load_run_data", lambda language, settings: (pack, None))
    monkeypatch.setattr(evaluate_module, "load_run_data", lambda language, settings: (pack, None))
    model_dir = save_tiny_model(tmp_path / "model")
    result = adapt("xyz", model=str(model_dir), output=str(tmp_path / "task"), recipe="task", max_steps=8,
                   batch_size=4, lr=5e-3, progress=False, echo=lambda line: None)
    recorded = json.loads((result.run_dir / "metrics.json").read_text())["adapted"]

    results = evaluate_run(result.run_dir, report_dir=tmp_path / "report", layers=False)
    assert results["task"] == "topic" and results["task_examples"] == len(SENTENCES)
    assert results["adapted"]["macro_f1"] == pytest.approx(recorded["task_macro_f1"])
    assert results["adapted"]["accuracy"] == pytest.approx(recorded["task_accuracy"])
    assert "macro_f1" not in results["base"]  # the base model has no head
    assert any(entry["type"] == "macro_f1" for entry in results["card_metrics"])
    assert "macro-F1" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "metrics_tasks.png").exists()
