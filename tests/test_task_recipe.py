"""The task recipe (MAD-X) on tiny models: what trains, stacking, fusion, the three head kinds, reload."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import lowres_adapters.training.adapt as adapt_module
from lowres_adapters.artifact import read_tensors
from lowres_adapters.data.examples import LabeledExample, PackData, TaskData, TextExample
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import TINY_CORPUS
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes.task import TASK_HEAD_FILE, load_task_model
from lowres_adapters.training.task_scoring import evaluate_task, predict
from training_support import save_tiny_model

SENTENCES = [LabeledExample(text=text, label="nya" if index % 2 == 0 else "eng", id=str(index))
             for index, text in enumerate(TINY_CORPUS)]
TAGGED = [LabeledExample(tokens=tuple(text.rstrip(".").split()), id=str(index),
                         tags=tuple("B-PER" if word in ("God", "Mulungu") else "O" for word in text.rstrip(".").split()))
          for index, text in enumerate(TINY_CORPUS)]
QUESTIONS = [LabeledExample(question="Who?", text=text, answers=("God" if "God" in text else "Mulungu",), id=str(i))
             for i, text in enumerate(TINY_CORPUS) if "God" in text or "Mulungu" in text]


def pack_with(tasks: dict[str, TaskData]) -> PackData:
    """Return pack data with tiny text splits and ``tasks``."""
    text = [TextExample(text, str(index), "xyz") for index, text in enumerate(TINY_CORPUS)]
    return PackData(text={"train": text * 4, "test": text}, tasks=tasks)


def task_of(kind: str, examples: list[LabeledExample], labels: tuple[str, ...]) -> TaskData:
    return TaskData(kind=kind, labels=labels, splits={"train": examples * 4, "test": examples})


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Return (model folder, function installing pack data) with the pack loader patched."""
    model_dir = save_tiny_model(tmp_path / "model")

    def install(tasks: dict[str, TaskData]) -> None:
        monkeypatch.setattr(adapt_module, "load_run_data", lambda language, settings: (pack_with(tasks), None))

    install({"topic": task_of("sequence_classification", SENTENCES, ("eng", "nya"))})
    return model_dir, install


def run(model_dir, output, **settings):
    defaults = dict(model=str(model_dir), output=str(output), max_steps=12, batch_size=4, progress=False,
                    echo=lambda line: None)
    return adapt("xyz", **{**defaults, **settings})


def test_task_adapter_on_frozen_language_adapter(setup, tmp_path):
    model_dir, _ = setup
    lang = run(model_dir, tmp_path / "lang", adapter="seq_bn", max_steps=2)
    lang_tensors = read_tensors(lang.run_dir)
    lines: list[str] = []
    result = run(model_dir, tmp_path / "task", recipe="task", lr=5e-3, echo=lines.append,
                 recipe_options={"lang_adapter": str(lang.run_dir), "score_text": True})
    assert any("macro-F1" in line and "majority class" in line for line in lines), lines
    assert any(line.startswith("scoring the base model on") for line in lines)  # score_text: the held-out text
    adapted = result.metrics["adapted"]
    assert {"task_accuracy", "task_macro_f1", "task_majority_macro_f1", "bits_per_char"} <= set(adapted)
    assert "task_accuracy" not in result.metrics["base"]  # no head before training
    saved = read_tensors(result.run_dir)
    head_keys = [key for key in saved if key.startswith("lowres.head.")]
    adapter_keys = [key for key in saved if not key.startswith("lowres.")]
    assert head_keys and adapter_keys
    assert all(".task_topic." in key for key in adapter_keys)  # only the task adapter is saved
    assert json.loads((result.run_dir / TASK_HEAD_FILE).read_text())["labels"] == ["eng", "nya"]

    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    inside = dict(model.named_parameters())
    for key, value in lang_tensors.items():  # the language adapter did not train
        torch.testing.assert_close(inside[key].detach(), value)
    assert str(model.adapters_config.active_setup) == "Stack[xyz, task_topic]"
    rescored = evaluate_task(model, head, tokenizer, task, SENTENCES)
    assert rescored["macro_f1"] == pytest.approx(adapted["task_macro_f1"])
    assert rescored["accuracy"] == pytest.approx(adapted["task_accuracy"])


def test_fusion_of_two_language_adapters_under_the_task_adapter(setup, tmp_path):
    model_dir, _ = setup
    text = run(model_dir, tmp_path / "text", adapter="seq_bn", max_steps=2)
    graph = run(model_dir, tmp_path / "graph", adapter="seq_bn", max_steps=2, seed=7)  # same adapter name "xyz"
    result = run(model_dir, tmp_path / "fused", recipe="task",
                 recipe_options={"lang_adapter": str(text.run_dir), "fuse_with": [str(graph.run_dir)]})
    saved = read_tensors(result.run_dir)
    assert any("adapter_fusion_layer" in key for key in saved)  # the fusion layer trained and was saved
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    assert "Fuse" in str(model.adapters_config.active_setup)
    rescored = evaluate_task(model, head, tokenizer, task, SENTENCES)
    assert rescored["macro_f1"] == pytest.approx(result.metrics["adapted"]["task_macro_f1"])


def hand_entity_f1(predicted: list, gold: list) -> float:
    """Entity F1 (percent) when every entity is one B-PER token: spans are (sentence, position) pairs."""
    def spans(tag_lists):
        return {(row, index) for row, tags in enumerate(tag_lists) for index, tag in enumerate(tags) if tag == "B-PER"}

    found, expected = spans(predicted), spans(gold)
    return 100.0 * 2 * len(found & expected) / (len(found) + len(expected)) if found or expected else 0.0


def hand_exact_match(predicted: list[str], answers: list[tuple[str, ...]]) -> float:
    """Exact match (percent) for one-word answers: equal up to case, surrounding spaces and punctuation."""
    def norm(text: str) -> str:
        return text.strip().strip(".,;:!?").lower()

    hits = [any(norm(prediction) == norm(answer) for answer in options) for prediction, options in zip(predicted, answers)]
    return 100.0 * sum(hits) / len(hits)


@pytest.mark.parametrize("predicted,expected", [
    ([["O", "B-PER", "O"], ["B-PER", "O"]], 100.0),  # both entities found, nothing else
    ([["O", "B-PER", "O"], ["O", "O"]], 100.0 * 2 * 1 / 3),  # one of two found: P 1, R 1/2
    ([["B-PER", "B-PER", "O"], ["B-PER", "O"]], 100.0 * 2 * 2 / 5),  # one false positive: P 2/3, R 1
    ([["O", "O", "B-PER"], ["O", "B-PER"]], 0.0),  # wrong positions
])
def test_entity_f1_of_known_predictions(predicted, expected):
    from lowres_adapters.training.task_scoring import score_predictions

    gold = [LabeledExample(tokens=("In", "God", "we"), tags=("O", "B-PER", "O")),
            LabeledExample(tokens=("Mulungu", "ali"), tags=("B-PER", "O"))]
    scores = score_predictions(task_of("token_classification", gold, ("O", "B-PER")), gold, predicted)
    assert scores["entity_f1"] == pytest.approx(expected)
    assert hand_entity_f1(predicted, [example.tags for example in gold]) == pytest.approx(expected)


def test_exact_match_of_known_answers():
    from lowres_adapters.training.task_scoring import score_predictions

    gold = QUESTIONS[:4]
    assert [example.answers[0] for example in gold] == ["Mulungu", "God", "Mulungu", "God"]
    predicted = ["mulungu", " God.", "God", ""]  # 2 of 4 right up to case, spaces and punctuation
    scores = score_predictions(task_of("extractive_qa", gold, ()), gold, predicted)
    assert scores["exact_match"] == pytest.approx(50.0)
    assert hand_exact_match(predicted, [e.answers for e in gold]) == pytest.approx(50.0)


@pytest.mark.parametrize("kind,examples,labels,metric", [
    ("token_classification", TAGGED, ("O", "B-PER"), "task_entity_f1"),
    ("extractive_qa", QUESTIONS, (), "task_exact_match"),
])
def test_token_classification_and_qa_train_on_the_base_model(setup, tmp_path, kind, examples, labels, metric):
    model_dir, install = setup
    install({"probe": task_of(kind, examples, labels)})
    lines: list[str] = []
    result = run(model_dir, tmp_path / kind, recipe="task", lr=1e-2, max_steps=30, echo=lines.append)
    assert not any("scoring the base model" in line for line in lines)  # nothing to score before a head exists
    adapted = result.metrics["adapted"]
    # the reported figure is the hand-counted score of what the saved model predicts on the test split
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    predictions = predict(model, head, tokenizer, task, examples)
    if kind == "token_classification":
        assert adapted[metric] == pytest.approx(hand_entity_f1(predictions, [e.tags for e in examples]))
    else:
        assert adapted[metric] == pytest.approx(hand_exact_match(predictions, [e.answers for e in examples]))
    log = [json.loads(line) for line in (result.run_dir / "train_log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in log if record.get("event", record.get("type")) in (None, "train")
              and "loss" in record]
    assert losses and losses[-1] < losses[0]


def test_unknown_task_and_missing_adapter_folder_are_one_line_errors(setup, tmp_path):
    model_dir, _ = setup
    with pytest.raises(LowresError, match="unknown task 'nosuch'"):
        run(model_dir, tmp_path / "a", recipe="task", recipe_options={"task": "nosuch"})
    with pytest.raises(LowresError, match="language adapter folder not found"):
        run(model_dir, tmp_path / "b", recipe="task", recipe_options={"lang_adapter": str(tmp_path / "none")})


def test_cli_lang_adapter_flag_reaches_the_recipe(setup, tmp_path, capsys):
    from lowres_adapters.cli import main

    model_dir, _ = setup
    lang = run(model_dir, tmp_path / "lang", adapter="seq_bn", max_steps=1)
    try:
        main(["adapt", "xyz", "--recipe", "task", "--model", str(model_dir), "--lang-adapter", str(lang.run_dir),
              "--max-steps", "2", "--batch-size", "4", "--output", str(tmp_path / "task"), "--quiet"])
    except SystemExit as done:
        assert done.code == 0, capsys.readouterr().err
    settings = json.loads((tmp_path / "task" / "run_config.json").read_text())
    assert settings["recipe_options"]["lang_adapter"] == str(lang.run_dir)
    assert settings["adapter"] == "seq_bn"  # the task recipe's default adapter type


def test_evaluation_subset_is_drawn_across_the_split_not_its_head():
    from lowres_adapters.training.recipes.task import TaskOptions, evaluation_examples

    ordered = [LabeledExample(text=str(index), label="a" if index < 50 else "b") for index in range(100)]
    task = TaskData(kind="sequence_classification", labels=("a", "b"), splits={"test": ordered})
    subset = evaluation_examples(task, TaskOptions(max_eval_examples=20))
    assert len(subset) == 20 and {example.label for example in subset} == {"a", "b"}
    assert [int(example.text) for example in subset] == sorted(int(example.text) for example in subset)
    assert evaluation_examples(task, TaskOptions()) == ordered


def test_majority_figures_score_the_most_frequent_training_label():
    from lowres_adapters.training.recipes.task import majority_figures

    train = [LabeledExample(text=str(index), label="a" if index < 6 else "b") for index in range(10)]
    test = [LabeledExample(text=text, label=label) for text, label in (("x", "b"), ("y", "a"), ("z", "b"))]
    task = TaskData(kind="sequence_classification", labels=("a", "b"), splits={"train": train, "test": test})
    figures = majority_figures(task, test)
    assert figures["task_majority_label"] == "a"
    assert figures["task_majority_accuracy"] == pytest.approx(100 / 3)
    assert figures["task_majority_macro_f1"] == pytest.approx(25.0)  # F1(a) = 2/(3+1), F1(b) = 0


def test_head_statistics_come_from_the_trained_model(setup, tmp_path):
    """After training, the head standardises with the trained model's own feature statistics (not
    the running average of the batches, which lags behind the task adapter moving the features)."""
    from lowres_adapters.training.heads import last_hidden_states
    from lowres_adapters.training.task_features import collate, encode_examples

    model_dir, _ = setup
    result = run(model_dir, tmp_path / "task", recipe="task", lr=5e-2)
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    train = SENTENCES * 4  # every training example is in the calibration draw (fewer than 256)
    batch = collate(encode_examples(task.kind, train, tokenizer, task.labels, 128), tokenizer.pad_token_id)
    with torch.no_grad():
        rows = head.feature_rows(last_hidden_states(model, batch["input_ids"], batch["attention_mask"]),
                                 batch["attention_mask"])
    torch.testing.assert_close(head.normalizer.running_mean, rows.mean(0), rtol=0, atol=5e-3)
    torch.testing.assert_close(head.normalizer.running_var, rows.var(0), rtol=2e-2, atol=5e-3)


def test_feature_layer_cuts_the_model_and_the_head_reads_that_layer(setup, tmp_path):
    """``feature_layer = 1`` keeps layer 0 only: the head reads the final norm of its output, the
    task adapter exists only there, and the reloaded run folder (MAD-X) scores the same."""
    from lowres_adapters.training.heads import keep_layers, last_hidden_states

    model_dir, _ = setup
    full, cut = (AutoModelForCausalLM.from_pretrained(str(model_dir)) for _ in range(2))
    assert keep_layers(cut, 1) == 2 and len(cut.model.layers) == 1
    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = full.model.norm(full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1])
        torch.testing.assert_close(last_hidden_states(cut, ids, mask), expected)
    with pytest.raises(ValueError, match="between 1 and 1"):
        keep_layers(cut, 2)

    lang = run(model_dir, tmp_path / "lang", adapter="seq_bn", max_steps=2)
    result = run(model_dir, tmp_path / "task", recipe="task", lr=5e-3,
                 recipe_options={"lang_adapter": str(lang.run_dir), "feature_layer": 1})
    adapter_keys = [key for key in read_tensors(result.run_dir) if not key.startswith("lowres.")]
    assert adapter_keys and all(".layers.0." in key for key in adapter_keys)
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    assert len(model.model.layers) == 1
    rescored = evaluate_task(model, head, tokenizer, task, SENTENCES)
    assert rescored["macro_f1"] == pytest.approx(result.metrics["adapted"]["task_macro_f1"])
    with pytest.raises(LowresError, match="feature_layer"):
        run(model_dir, tmp_path / "bad", recipe="task", recipe_options={"feature_layer": 9})


def test_a_task_run_with_its_own_extended_vocabulary_reloads(setup, tmp_path):
    """``--extend-vocab`` on the bare base: the new rows train with the task adapter, and
    ``load_task_model`` restores them and the extended tokenizer (it used the base ones before)."""
    from lowres_adapters.artifact import read_metadata

    model_dir, _ = setup
    result = run(model_dir, tmp_path / "task", recipe="task", lr=5e-3, extend_vocab=20)
    assert "lowres.new_embedding_rows" in read_tensors(result.run_dir)
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    vocabulary = read_metadata(result.run_dir).vocabulary
    assert vocabulary["added_tokens"] > 0
    extended_size = vocabulary["original_size"] + vocabulary["added_tokens"]
    assert len(tokenizer) == model.get_input_embeddings().weight.shape[0] == extended_size
    rescored = evaluate_task(model, head, tokenizer, task, SENTENCES)
    assert rescored["macro_f1"] == pytest.approx(result.metrics["adapted"]["task_macro_f1"])


def test_progress_bar_counts_examples_and_changes_no_prediction(setup, tmp_path, capsys):
    model_dir, _ = setup
    result = run(model_dir, tmp_path / "task", recipe="task", max_steps=2)
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    capsys.readouterr()
    quiet = predict(model, head, tokenizer, task, SENTENCES, batch_size=3)
    assert "scoring" not in capsys.readouterr().err
    shown = predict(model, head, tokenizer, task, SENTENCES, batch_size=3, progress="scoring test examples")
    bar = capsys.readouterr().err
    assert shown == quiet and len(shown) == len(SENTENCES)
    assert "scoring test examples" in bar and f"0/{len(SENTENCES)}" in bar  # counts examples, not batches


def test_decoders_cut_at_the_default_feature_layer_and_the_run_records_it(setup, tmp_path, monkeypatch, capsys):
    """Unset ``feature_layer``: a decoder deeper than DECODER_FEATURE_LAYER keeps that many layers, the
    start line says so, and the resolved value is recorded so the reloaded model is cut alike."""
    import lowres_adapters.training.recipes.task as task_recipe
    from lowres_adapters.artifact import read_metadata

    monkeypatch.setattr(task_recipe, "DECODER_FEATURE_LAYER", 1)  # the tiny decoder has 2 layers
    model_dir, _ = setup
    result = run(model_dir, tmp_path / "task", recipe="task", progress=True)
    shown = capsys.readouterr().err
    assert "the head reads layer 1 of 2" in shown  # the start line
    assert "refitting the head" in shown  # the refit's steps have a bar of their own
    assert read_metadata(result.run_dir).recipe_settings["options"]["feature_layer"] == 1
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    assert len(model.model.layers) == 1
    assert evaluate_task(model, head, tokenizer, task, SENTENCES)["macro_f1"] == pytest.approx(
        result.metrics["adapted"]["task_macro_f1"])


def test_feature_layer_resolution():
    from lowres_adapters.training.recipes.task import DECODER_FEATURE_LAYER, TaskOptions, resolved_feature_layer

    auto = TaskOptions()
    assert resolved_feature_layer(auto, masked=False, layers=30) == DECODER_FEATURE_LAYER
    assert resolved_feature_layer(auto, masked=True, layers=12) == 0  # encoders keep every layer
    assert resolved_feature_layer(auto, masked=False, layers=DECODER_FEATURE_LAYER) == 0
    assert resolved_feature_layer(auto, masked=False, layers=None) == 0  # a body it cannot cut
    assert resolved_feature_layer(TaskOptions(feature_layer=0), masked=False, layers=30) == 0
    assert resolved_feature_layer(TaskOptions(feature_layer=7), masked=False, layers=30) == 7


def test_refitted_sequence_heads_default_to_an_ensemble_recorded_for_reload(setup, tmp_path):
    """Unset ``head_members``: a refitted sequence head holds REFIT_HEAD_MEMBERS members, the resolved
    value is recorded, and the reloaded head (same members) predicts what the run reported; a head
    that is not refitted stays a single head."""
    from lowres_adapters.artifact import read_metadata
    from lowres_adapters.training.recipes.task import REFIT_HEAD_MEMBERS

    model_dir, _ = setup
    result = run(model_dir, tmp_path / "task", recipe="task")
    assert read_metadata(result.run_dir).recipe_settings["options"]["head_members"] == REFIT_HEAD_MEMBERS
    model, head, tokenizer, task = load_task_model(result.run_dir,
                                                   model=AutoModelForCausalLM.from_pretrained(str(model_dir)))
    assert head.config.members == REFIT_HEAD_MEMBERS
    assert head.output.weight.shape[0] == REFIT_HEAD_MEMBERS
    assert evaluate_task(model, head, tokenizer, task, SENTENCES)["macro_f1"] == pytest.approx(
        result.metrics["adapted"]["task_macro_f1"])
    single = run(model_dir, tmp_path / "kept", recipe="task", recipe_options={"refit_examples": 0})
    assert read_metadata(single.run_dir).recipe_settings["options"]["head_members"] == 1
