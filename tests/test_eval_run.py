"""``evaluate_run`` and the ``lowres evaluate`` / ``lowres analyze`` commands on tiny run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from click.testing import CliRunner

from _eval_runs import save_tiny_base, write_tiny_run, write_train_log
from lowres_adapters.cli import cli
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.card_metrics import metrics_for_card
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.runs.evaluate import evaluate_run
from lowres_adapters.loading import load_folder
from lowres_adapters.testing.tiny import TINY_CORPUS

LANGUAGE = "tum"  # no pack for it: the run's own held-out files are used
PAIRS = [("God is light.", "Mulungu ndiye kuwala."), ("And the earth was void.", "Dziko lapansi linali lopanda kanthu.")]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    base = save_tiny_base(root / "base")
    run = write_tiny_run(root / "run", base, language=LANGUAGE, scale=0.3,
                         metrics={"base": {"bits_per_char": 8.0}, "adapted": {"bits_per_char": 7.0}})
    (root / "heldout.txt").write_text("\n".join(TINY_CORPUS[::2]) + "\n")
    (root / "pairs.tsv").write_text("".join(f"{source}\t{target}\n" for source, target in PAIRS))
    settings = {"settings": {"data": {"eval_text": str(root / "heldout.txt"), "eval_pairs": str(root / "pairs.tsv"),
                                      "eval_examples": 300}}}
    (run / "run_config.json").write_text(json.dumps(settings))
    (run / "metrics.json").write_text(json.dumps({"base": {"bits_per_char": 8.0}, "adapted": {"bits_per_char": 7.0}}))
    write_train_log(run)
    return run


def test_evaluate_run_scores_base_and_adapted_on_the_runs_held_out_data(tiny_run):
    results = evaluate_run(tiny_run, num_beams=1, max_new_tokens=4)
    texts = list(TINY_CORPUS[::2])
    loaded = load_folder(tiny_run)
    expected = score_texts(loaded.model, loaded.tokenizer, texts, max_length=512)
    assert results["eval_examples"] == len(texts)
    assert results["adapted"]["bits_per_char"] == pytest.approx(expected.bits_per_char, rel=1e-6)
    assert results["base"]["bits_per_char"] != pytest.approx(results["adapted"]["bits_per_char"])
    assert results["translation_direction"] == f"eng->{LANGUAGE}"
    assert [(sample["source"], sample["reference"]) for sample in results["samples"]] == PAIRS
    # rescored with sacrebleu itself, not with the library's scoring function
    hypotheses = [sample["adapted"] for sample in results["samples"]]
    references = [[target for _, target in PAIRS]]
    assert results["adapted"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, references).score)
    assert results["adapted"]["chrf_pp"] == pytest.approx(
        sacrebleu.corpus_chrf(hypotheses, references, word_order=2).score)
    assert results["adapted"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, references).score)
    assert "nw:2" in results["signatures"]["chrf_pp"]
    assert {entry["type"] for entry in results["card_metrics"]} >= {"bits_per_char", "chrf", "chrf_pp", "bleu"}


def test_max_examples_limits_texts_and_pairs(tiny_run):
    results = evaluate_run(tiny_run, max_examples=1, num_beams=1, max_new_tokens=2, skip_base=True)
    assert results["eval_examples"] == 1 and results["translation_examples"] == 1
    assert results["base"] == {"bits_per_char": 8.0}  # taken from metrics.json


def test_report_has_plots_tables_and_json(tiny_run, tmp_path):
    report = tmp_path / "report"
    evaluate_run(tiny_run, report_dir=report, num_beams=1, max_new_tokens=2, max_examples=2)
    names = {path.name for path in report.iterdir()}
    assert {"report.md", "report.html", "evaluation.json", "loss.png", "metrics_lm.png",
            "metrics_translation.png", "layers_base-adapted.png", "profile_base-adapted.png"} <= names
    markdown = (report / "report.md").read_text()
    assert "bits per character" in markdown and "![loss](loss.png)" in markdown
    assert "Layer-wise analysis: base -> adapted" in markdown
    html = (report / "report.html").read_text()
    assert "<img src='metrics_lm.png'" in html
    stored = json.loads((report / "evaluation.json").read_text())
    assert stored["layer_analysis"]["base -> adapted"]["ranking"][0] == "attention"


def test_metrics_for_card_keeps_adapted_figures_only():
    entries = metrics_for_card({"adapted": {"bits_per_char": 2.61234567, "tokens": 900, "chrf_pp": 30.0},
                                "base": {"bits_per_char": 4.0}, "translation_direction": "eng->nya"})
    assert entries == [{"name": "Bits per character", "type": "bits_per_char", "value": 2.6123},
                       {"name": "chrF++ eng->nya", "type": "chrf_pp", "value": 30.0}]


def test_cli_evaluate_json_prints_only_json_with_chrf(tiny_run):
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_run), "--json", "--num-beams", "1",
                                      "--max-new-tokens", "2"], catch_exceptions=False)
    assert result.exit_code == 0
    figures = json.loads(result.stdout)
    assert "chrf" in figures["adapted"] and "bits_per_char" in figures["base"]


def test_cli_evaluate_prints_a_table(tiny_run):
    result = CliRunner().invoke(cli, ["evaluate", str(tiny_run), "--num-beams", "1", "--max-new-tokens", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert "bits per character" in result.stdout and "chrF++" in result.stdout


def test_cli_analyze_with_base_flag_and_errors(tiny_run, tmp_path):
    heldout = tiny_run.parent / "heldout.txt"
    result = CliRunner().invoke(cli, ["analyze", "--base", str(tiny_run), "--text", str(heldout)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].split()[0] == "attention"
    assert "linear CKA per layer" in result.stdout
    wrong = CliRunner().invoke(cli, ["analyze", str(tiny_run)])
    assert wrong.exit_code == 1 and isinstance(wrong.exception, LowresError)
    assert str(wrong.exception) == "give BEFORE_DIR AFTER_DIR, or --base AFTER_DIR"


def test_bar_labels_keep_three_significant_digits():
    from lowres_adapters.evaluation.plots import bar_label

    assert [bar_label(v) for v in (3.998, 2.9586, 104.4, 0.09741, 12.29)] == ["4.00", "2.96", "104", "0.0974", "12.3"]
