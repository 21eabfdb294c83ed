"""The base model's held-out figures are cached only for models with a pinned revision; its held-out scores are
one entry that ``lowres adapt`` and ``lowres evaluate`` share when model, revision, texts and scoring settings
are equal."""

from __future__ import annotations

import pytest

from lowres_adapters.training.base_scores import cached_base_scores, held_out_parts


@pytest.fixture
def calls(tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path))
    monkeypatch.setattr("lowres_adapters.training.base_scores.model_revision",
                        lambda model_id: "rev1" if model_id == "pinned" else None)
    counter = []

    def score():
        counter.append(1)
        return {"bits_per_char": 3.5 + len(counter)}

    return counter, score


def test_pinned_models_are_scored_once_per_texts_and_settings(calls):
    counter, score = calls
    first = cached_base_scores("pinned", {"recipe": "language"}, ["a", "b"], score)
    again = cached_base_scores("pinned", {"recipe": "language"}, ["a", "b"], score)
    assert first == again == {"bits_per_char": 4.5} and len(counter) == 1
    cached_base_scores("pinned", {"recipe": "language"}, ["a", "c"], score)
    cached_base_scores("pinned", {"recipe": "sft"}, ["a", "b"], score)
    assert len(counter) == 3


def test_models_without_a_revision_are_always_scored(calls):
    counter, score = calls
    cached_base_scores("some/folder", {}, ["a"], score)
    cached_base_scores("some/folder", {}, ["a"], score)
    assert len(counter) == 2


def test_held_out_scores_are_shared_only_for_equal_model_revision_texts_and_scoring_settings(calls, monkeypatch):
    counter, score = calls
    first = cached_base_scores("pinned", held_out_parts("clm", 512), ["a", "b"], score)
    assert cached_base_scores("pinned", held_out_parts("clm", 512), ["a", "b"], score) == first
    assert len(counter) == 1
    for model_id, parts, texts in [("pinned", held_out_parts("clm", 512), ["a", "c"]),
                                   ("pinned", held_out_parts("clm", 256), ["a", "b"]),
                                   ("pinned", held_out_parts("mlm", 512), ["a", "b"]),
                                   ("pinned", held_out_parts("clm", 512, "torch.bfloat16"), ["a", "b"]),
                                   ("also-pinned", held_out_parts("clm", 512), ["a", "b"])]:
        before = len(counter)
        cached_base_scores(model_id, parts, texts, score)
        assert len(counter) == before + 1, (model_id, parts, texts)
    monkeypatch.setattr("lowres_adapters.training.base_scores.model_revision", lambda model_id: "rev2")
    cached_base_scores("pinned", held_out_parts("clm", 512), ["a", "b"], score)  # another revision
    assert len(counter) == 7


@pytest.fixture
def tiny_files(tmp_path, monkeypatch):
    from training_support import tiny_run_files

    files = tiny_run_files(tmp_path)
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("lowres_adapters.training.base_scores.model_revision", lambda model_id: "rev1")
    return files, tmp_path


def test_evaluate_reuses_the_base_held_out_scores_adapt_computed(tiny_files, monkeypatch):
    from lowres_adapters.runs import evaluate as evaluate_module
    from lowres_adapters.training.adapt import adapt

    files, tmp_path = tiny_files
    result = adapt("nya", model=files["model"], adapter="toy", text=files["text"], eval_text=files["eval_text"],
                   max_steps=2, progress=False, lr=1e-2, output=str(tmp_path / "run"))
    scored = []
    original = evaluate_module.score_texts
    monkeypatch.setattr(evaluate_module, "score_texts", lambda model, *args, **kwargs: scored.append(model) or
                        original(model, *args, **kwargs))
    options = {"num_beams": 1, "max_new_tokens": 2, "record": False, "progress": False}
    results = evaluate_module.evaluate_run(result.run_dir, **options)
    assert len(scored) == 1  # only the adapted model: the base's scores are adapt's
    assert results["base"]["bits_per_char"] == result.metrics["base"]["bits_per_char"]
    evaluate_module.evaluate_run(result.run_dir, max_length=256, **options)  # other scoring length: not shared
    assert len(scored) == 3
    evaluate_module.evaluate_run(result.run_dir, max_examples=1, **options)  # other texts: not shared
    assert len(scored) == 5


def test_cpt_sft_runs_that_differ_in_training_options_score_the_base_once(tiny_files):
    from lowres_adapters.training.adapt import adapt

    files, tmp_path = tiny_files
    lines: list[str] = []

    def run(name, **options):
        adapt("nya", recipe="cpt_sft", model=files["model"], adapter="toy", text=files["text"],
              eval_text=files["eval_text"], pairs=files["pairs"], eval_pairs=files["eval_pairs"], max_steps=1,
              progress=False, output=str(tmp_path / name), echo=lines.append, recipe_options=options)
        return sum(line.startswith("scoring the base model") for line in lines)

    assert run("a", sft_lr=1e-3) == 1
    assert run("b", sft_lr=5e-4, cpt_max_steps=2, mix_share=0.1) == 1  # training options: the cached figures
    assert run("c", eval_pairs=3) == 2  # fewer answers scored: the base is scored again
