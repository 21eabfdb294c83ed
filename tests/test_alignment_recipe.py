"""The prompt + alignment recipe on tiny models: the teacher is the untouched base model, holds no
gradients and is cached; the alignment loss falls; few labels, synthetic pairs and errors."""

from __future__ import annotations

import json

import pytest
import torch

from lowres_adapters.artifact import read_metadata
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.alignment import AlignmentObjective, build_alignment_loss, teacher_mode
from lowres_adapters.training.recipes.prompt_align import AlignmentCollator, make_loss_fn
from training_support import save_tiny_model

CHICHEWA, ENGLISH = TINY_CORPUS[0::2], TINY_CORPUS[1::2]


def attach(model, type_name: str, name: str = "nya"):
    spec = get_registry().adapter_type(type_name)
    handle = spec.attach(model, name, spec.config_class())
    handle.activate()
    return handle


def encode(tokenizer, texts):
    return tokenizer(list(texts), return_tensors="pt", padding=True)


@pytest.mark.parametrize("type_name", ["seq_bn", "prompt_tuning", "lora"])
def test_teacher_is_the_original_model_and_student_is_not(type_name):
    pristine, tokenizer = tiny_model("llama")
    model, _ = tiny_model("llama")
    handle = attach(model, type_name)
    with torch.no_grad():  # make the adapter matter (zero-initialised parts would hide it)
        for parameter in handle.trainable_parameters().values():
            parameter.add_(0.5)
    batch = encode(tokenizer, ENGLISH)
    with torch.no_grad():
        reference = pristine(**batch).logits
        with teacher_mode(handle, model) as teacher_model:
            teacher = teacher_model(**batch).logits
        student = handle.model(**batch).logits
    torch.testing.assert_close(teacher, reference)
    assert not torch.allclose(student, reference, atol=1e-4)
    assert model.training is False  # restored


def test_teacher_holds_no_gradients_and_is_cached():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    loss_fn, needs = build_alignment_loss("cosine", {})
    objective = AlignmentObjective(loss_fn, needs, handle)
    calls = []
    model.get_input_embeddings().register_forward_hook(lambda *args: calls.append(1))
    student_batch, teacher_batch = encode(tokenizer, CHICHEWA), encode(tokenizer, ENGLISH)
    ids = torch.arange(3)
    student, _ = objective.student_side(handle.model, student_batch["input_ids"], student_batch["attention_mask"])
    teacher = objective.teacher_side(teacher_batch["input_ids"], teacher_batch["attention_mask"], ids)
    objective.loss(student, teacher).backward()
    assert handle.model.soft_prompt.grad is not None
    assert all(parameter.grad is None for parameter in model.parameters())
    assert not teacher.pooled.requires_grad
    forwards = len(calls)
    again = objective.teacher_side(teacher_batch["input_ids"], teacher_batch["attention_mask"], ids)
    assert len(calls) == forwards  # served from the cache: no teacher forward
    torch.testing.assert_close(again.pooled, teacher.pooled)


def test_pooling_leaves_out_the_attention_sink_on_both_sides():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    loss_fn, needs = build_alignment_loss("cosine", {})
    batch = tokenizer([ENGLISH[0]], return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    skipping = AlignmentObjective(loss_fn, needs, handle, skip_first=1, cache_limit=0)
    with torch.no_grad():
        teacher = skipping.teacher_side(ids, mask).pooled
        student, _ = skipping.student_side(handle.model, ids, mask)
        with teacher_mode(handle, model) as teacher_model:
            states = teacher_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        student_states = handle.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(teacher[0], states[0, 1:].mean(0))
    torch.testing.assert_close(student.pooled[0], student_states[0, 1:].mean(0))
    assert not torch.allclose(teacher[0], states[0].mean(0))


def test_decoders_skip_the_sink_by_default_encoders_do_not():
    from lowres_adapters.training.recipes.prompt_align import PromptAlignOptions, skipped_tokens

    assert skipped_tokens(PromptAlignOptions(), "clm") == 1
    assert skipped_tokens(PromptAlignOptions(), "mlm") == 0
    assert skipped_tokens(PromptAlignOptions(skip_first=0), "clm") == 0
    with pytest.raises(ValueError):
        PromptAlignOptions(skip_first=-1)


@pytest.mark.parametrize("loss_name", ["cosine", "mse", "kl", "infonce"])
def test_training_the_prompt_lowers_the_alignment_loss(loss_name):
    torch.manual_seed(0)
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    loss_fn, needs = build_alignment_loss(loss_name, {})
    objective = AlignmentObjective(loss_fn, needs, handle)
    features = [{"input_ids": tokenizer(c)["input_ids"], "teacher_input_ids": tokenizer(e)["input_ids"],
                 "example_id": index} for index, (c, e) in enumerate(zip(CHICHEWA, ENGLISH))]
    batch = AlignmentCollator(tokenizer, "clm")(features, torch.Generator())
    align_only = make_loss_fn("clm", "none", 1.0, objective)
    optimizer = torch.optim.Adam([handle.model.soft_prompt], lr=0.05)
    first = align_only(handle.model, batch)[0].item()
    for _ in range(30):
        loss, count = align_only(handle.model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert count == 3  # alignment only: weighted by examples
    assert align_only(handle.model, batch)[0].item() < 0.9 * first


def test_task_and_alignment_losses_add_up():
    model, tokenizer = tiny_model("llama")
    handle = attach(model, "prompt_tuning")
    loss_fn, needs = build_alignment_loss("mse", {})
    objective = AlignmentObjective(loss_fn, needs, handle)
    features = [{"input_ids": tokenizer(c)["input_ids"], "teacher_input_ids": tokenizer(e)["input_ids"]}
                for c, e in zip(CHICHEWA, ENGLISH)]
    batch = AlignmentCollator(tokenizer, "clm")(features, torch.Generator())
    task, count = make_loss_fn("clm", "lm", 0.0, objective)(handle.model, batch)
    align, _ = make_loss_fn("clm", "none", 1.0, objective)(handle.model, batch)
    total, total_count = make_loss_fn("clm", "lm", 2.5, objective)(handle.model, batch)
    assert count == total_count == int((batch["labels"][:, 1:] != -100).sum())
    assert total.item() == pytest.approx(task.item() + 2.5 * align.item(), rel=1e-5)


@pytest.fixture
def pair_files(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model")
    pairs = [f"{english}\t{chichewa}" for english, chichewa in zip(ENGLISH, CHICHEWA)] * 8
    (tmp_path / "train.tsv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("\n".join(pairs[:3]) + "\n", encoding="utf-8")
    return tmp_path, model_dir


def run(tmp_path, model_dir, output, **settings):
    defaults = dict(model=str(model_dir), recipe="prompt-align", pairs=str(tmp_path / "train.tsv"),
                    eval_pairs=str(tmp_path / "test.tsv"), output=str(tmp_path / output), max_steps=3,
                    batch_size=4, progress=False, echo=lambda line: None)
    return adapt("tum", **{**defaults, **settings})


def test_recipe_runs_with_soft_prompt_by_default_and_reports_alignment(pair_files):
    tmp_path, model_dir = pair_files
    result = run(tmp_path, model_dir, "run", max_train_examples=10, recipe_options={"align_loss": "infonce"})
    metadata = read_metadata(result.run_dir)
    assert metadata.adapter_type == "prompt_tuning" and metadata.recipe == "prompt_align"
    for block in ("base", "adapted"):
        figures = result.metrics[block]
        assert {"bits_per_char", "align_cosine", "align_retrieval_top1", "align_retrieval_top1_to_target",
                "align_loss_infonce"} <= set(figures)
        assert -1.0 <= figures["align_cosine"] <= 1.0 and 0.0 <= figures["align_retrieval_top1"] <= 1.0
        assert 0.0 <= figures["align_retrieval_top1_to_target"] <= 1.0
    assert result.metrics["adapted"]["align_cosine"] != pytest.approx(result.metrics["base"]["align_cosine"])


@pytest.mark.parametrize("only", [True, False])
def test_synthetic_pseudo_pairs_are_used_and_named(pair_files, monkeypatch, only):
    import lowres_adapters.training.recipes.prompt_align as recipe_module

    tmp_path, model_dir = pair_files
    (tmp_path / "english.txt").write_text("God is light.\nThe earth was void.\n", encoding="utf-8")
    (tmp_path / "lexicon.tsv").write_text("god\tMulungu\nlight\tkuwala\nearth\tdziko\nis\tndi\n", encoding="utf-8")
    trained_on = []
    build_features = recipe_module.build_features

    def recording(pairs, *args, **kwargs):
        trained_on.append(list(pairs))
        return build_features(pairs, *args, **kwargs)

    monkeypatch.setattr(recipe_module, "build_features", recording)
    result = run(tmp_path, model_dir, f"synthetic-{only}", recipe_options={
        "synthetic_text": str(tmp_path / "english.txt"), "synthetic_lexicon": str(tmp_path / "lexicon.tsv"),
        "synthetic_only": only})
    training = [pairs for pairs in trained_on if any(pair.provenance.synthetic for pair in pairs)]
    assert len(training) == 1  # the training job's pairs (the held-out pairs hold no synthetic ones)
    pairs = training[0]
    synthetic = [pair for pair in pairs if pair.provenance.synthetic]
    # the second sentence is mostly outside the lexicon, so the source leaves it out
    assert [(pair.source, pair.target) for pair in synthetic] == [("God is light.", "Mulungu ndi kuwala.")]
    assert len(pairs) == (1 if only else 1 + 24)  # plus the 24 real pairs of train.tsv
    start = json.loads((result.run_dir / "train_log.jsonl").read_text().splitlines()[0])
    assert start["train_examples"] == len(pairs)
    datasets = read_metadata(result.run_dir).datasets
    assert "lexicon-substitution" in datasets and (datasets == ["lexicon-substitution"]) == only


def test_training_base_weights_is_refused(pair_files):
    tmp_path, model_dir = pair_files
    with pytest.raises(LowresError, match="frozen backbone"):
        run(tmp_path, model_dir, "full", adapter="full")


def test_unknown_alignment_loss_is_a_one_line_error(pair_files):
    tmp_path, model_dir = pair_files
    with pytest.raises(LowresError, match="unknown alignment loss 'cosin'.*did you mean 'cosine'"):
        run(tmp_path, model_dir, "bad", recipe_options={"align_loss": "cosin"})


def test_held_out_pairs_are_a_seeded_draw_across_the_split():
    from lowres_adapters.data.examples import PairExample
    from lowres_adapters.training.recipes.prompt_align import PromptAlignOptions, held_out_pairs

    pairs = [PairExample(f"e{i}", f"n{i}", "eng", "nya", id=str(i)) for i in range(50)]
    drawn = held_out_pairs(pairs, PromptAlignOptions(eval_pairs=10))
    assert len({pair.id for pair in drawn}) == 10 and max(int(pair.id) for pair in drawn) >= 10
    assert drawn == held_out_pairs(pairs, PromptAlignOptions(eval_pairs=10))
    assert drawn != held_out_pairs(pairs, PromptAlignOptions(eval_pairs=10, selection_seed=1))
    assert held_out_pairs(pairs[:5], PromptAlignOptions(eval_pairs=10)) == pairs[:5]


def test_an_adapters_adapter_trains_after_the_base_was_scored_with_hidden_states(pair_files):
    """The base scoring's forward with hidden states left transformers' recorded ``forward`` on
    every decoder layer: a ``seq_bn`` adapter attached afterwards was never called, and step 1
    failed with "element 0 of tensors does not require grad"."""
    from lowres_adapters.artifact import read_tensors

    tmp_path, model_dir = pair_files
    result = run(tmp_path, model_dir, "run", adapter="seq_bn", max_train_examples=10)
    up = [value for key, value in read_tensors(result.run_dir).items() if key.endswith("adapter_up.weight")]
    assert up and any(float(tensor.abs().sum()) > 0 for tensor in up)  # zero-initialised, so it trained
    assert result.metrics["adapted"]["align_cosine"] != pytest.approx(result.metrics["base"]["align_cosine"])
