"""`lowres adapt --extend-vocab N` on a tiny model: the run folder holds only new rows + tokenizer,
and base + saved rows + adapter rebuild exactly the adapted model."""

from __future__ import annotations

import json

import pytest

from lowres_adapters.artifact import NEW_ROWS_KEY, attach_from_artifact, read_metadata, read_tensors
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.vocabulary import restore_extended_vocabulary, tokens_per_character
from test_vocabulary_extension import tibetan_like_text
from training_support import save_tiny_model


@pytest.mark.parametrize("adapter", ["seq_bn", "prompt_tuning"])
def test_adapt_with_extended_vocabulary_saves_rows_and_restores(tmp_path, adapter):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = save_tiny_model(tmp_path / "model")
    lines = tibetan_like_text(240, seed=3)
    (tmp_path / "train.txt").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    (tmp_path / "heldout.txt").write_text("\n".join(lines[200:]) + "\n", encoding="utf-8")
    result = adapt("adx", model=str(model_dir), adapter=adapter, text=str(tmp_path / "train.txt"),
                   eval_text=str(tmp_path / "heldout.txt"), output=str(tmp_path / "run"), max_steps=4,
                   batch_size=4, lr=5e-3, extend_vocab=40, progress=False, echo=lambda line: None)
    run_dir = result.run_dir
    metadata = read_metadata(run_dir)
    base_tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert metadata.vocabulary == {"original_size": len(base_tokenizer), "added_tokens": 40}
    tensors = read_tensors(run_dir)
    assert tuple(tensors[NEW_ROWS_KEY].shape) == (40, 32)
    assert not any(key.startswith("lowres.base.") for key in tensors)  # rows are not saved twice
    assert (run_dir / "tokenizer" / "tokenizer.json").exists()
    logged = json.loads((run_dir / "run_config.json").read_text("utf-8"))
    assert logged["settings"]["extend_vocab"] == 40

    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    restored_tokenizer = restore_extended_vocabulary(base, run_dir)
    held_out = lines[200:][:300]
    assert tokens_per_character(restored_tokenizer, held_out) < tokens_per_character(base_tokenizer, held_out)
    handle = attach_from_artifact(base, run_dir)
    scores = score_texts(handle.model, restored_tokenizer, held_out, objective="clm")
    assert scores.bits_per_char == pytest.approx(result.adapted_bits_per_char, rel=1e-5)
    assert result.adapted_bits_per_char != pytest.approx(result.base_bits_per_char, rel=1e-3)
