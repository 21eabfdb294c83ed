"""`lowres merge` and `lowres export --format gguf` on tiny models: the merged folder loads with transformers
alone and gives the adapted logits; the GGUF file read back by transformers' GGUF loader gives the merged
model's logits (f32 exactly up to float rounding, f16 within the documented tolerance)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import hub_support
from cli_support import run_cli
from lowres_adapters import load
from lowres_adapters.artifact import write_artifact
from lowres_adapters.errors import LowresError
from lowres_adapters.merge import merge_run
from lowres_adapters.models import load_base_model
from lowres_adapters.registry import get_registry, reset_registry
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.run_folder import build_metadata
from test_vocabulary_extension import tibetan_like_text

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
MERGE_TOLERANCE = 1e-5
F16_TOLERANCE = 5e-3
"""f16 rounding of the weight matrices (docs/hub.md gives the figure measured on SmolLM2)."""


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return hub_support.save_tiny_base(tmp_path_factory.mktemp("merge-base"))


def random_run(run_dir: Path, base_dir: Path, adapter_type: str) -> Path:
    """Write a run folder holding ``adapter_type`` with random, clearly non-zero weights."""
    reset_registry(None)
    model, _ = load_base_model(str(base_dir))
    spec = get_registry().adapter_type(adapter_type)
    handle = spec.attach(model, "nya", spec.config_class())
    generator = torch.Generator().manual_seed(4)
    offset = 1.0 if "ia3" in adapter_type else 0.0  # (IA)^3 vectors scale around 1
    handle.load_adapter_state_dict({key: torch.randn(value.shape, generator=generator) * 0.3 + offset
                                    for key, value in handle.adapter_state_dict().items()})
    metadata = build_metadata(handle=handle, adapter_type=adapter_type, model_id=str(base_dir), objective="clm",
                              language="nya", script="Latn", recipe="language", recipe_settings={}, metrics={},
                              datasets=[])
    write_artifact(run_dir, handle, metadata)
    return run_dir


def max_difference(first: torch.Tensor, second: torch.Tensor) -> float:
    return (first - second).abs().max().item()


@pytest.mark.parametrize("adapter_type", ["lora", "ia3", "peft_lora", "peft_ia3"])
def test_merged_folder_loads_with_transformers_alone_and_gives_the_adapted_logits(base_dir, tmp_path,
                                                                                 adapter_type) -> None:
    run_dir = random_run(tmp_path / "run", base_dir, adapter_type)
    model, tokenizer = load(str(run_dir))
    expected = hub_support.probe_logits(model, tokenizer)
    base, _ = load_base_model(str(base_dir))
    assert max_difference(hub_support.probe_logits(base, tokenizer), expected) > 1e-2  # the adapter acts
    out = merge_run(run_dir, tmp_path / "merged")
    assert "adapters" not in (out / "config.json").read_text("utf-8")  # no adapter library needed
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert max_difference(hub_support.probe_logits(merged, tokenizer), expected) <= MERGE_TOLERANCE


def test_merge_keeps_new_vocabulary_rows_and_the_extended_tokenizer(base_dir, tmp_path) -> None:
    from transformers import AutoTokenizer

    reset_registry(None)
    lines = tibetan_like_text(240, seed=3)
    (tmp_path / "train.txt").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    (tmp_path / "held.txt").write_text("\n".join(lines[200:]) + "\n", encoding="utf-8")
    run_dir = adapt("adx", model=str(base_dir), adapter="lora", text=str(tmp_path / "train.txt"),
                    eval_text=str(tmp_path / "held.txt"), output=str(tmp_path / "run"), max_steps=3, batch_size=4,
                    lr=5e-2, extend_vocab=40, progress=False, echo=lambda line: None).run_dir
    model, tokenizer = load(str(run_dir))
    ids = tokenizer(lines[201], return_tensors="pt").input_ids
    assert int(ids.max()) >= 261  # the text uses new tokens
    out = merge_run(run_dir, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert AutoTokenizer.from_pretrained(str(out))(lines[201]).input_ids == ids[0].tolist()
    with torch.no_grad():
        assert max_difference(merged(input_ids=ids).logits, model(input_ids=ids).logits) <= MERGE_TOLERANCE


def test_types_that_cannot_merge_and_existing_outputs_are_one_line_errors(base_dir, tmp_path, capsys) -> None:
    run_dir = random_run(tmp_path / "run", base_dir, "seq_bn")
    code, err = run_cli(["merge", str(run_dir), str(tmp_path / "out")], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "adapter type 'seq_bn' adds computation the base weights cannot express" in err
    assert not (tmp_path / "out").exists()
    lora = random_run(tmp_path / "lora", base_dir, "lora")
    (tmp_path / "taken").mkdir()
    code, err = run_cli(["merge", str(lora), str(tmp_path / "taken")], capsys)
    assert code == 1 and "taken: exists; choose another output or pass --overwrite" in err
    with pytest.raises(LowresError, match="cannot be merged"):
        merge_run(random_run(tmp_path / "prompt", base_dir, "prompt_tuning"), tmp_path / "x")


@pytest.mark.parametrize("dtype,tolerance", [("f32", MERGE_TOLERANCE), ("f16", F16_TOLERANCE)])
def test_gguf_export_reads_back_with_transformers_and_gives_the_merged_logits(base_dir, tmp_path, capsys, dtype,
                                                                            tolerance) -> None:
    import gguf

    run_dir = random_run(tmp_path / "run", base_dir, "lora")
    merged_dir = merge_run(run_dir, tmp_path / "merged")
    code, err = run_cli(["export", str(run_dir), "--format", "gguf", "--dtype", dtype,
                         str(tmp_path / "model.gguf")], capsys)
    assert code == 0, err
    model, tokenizer = load(str(run_dir))
    merged_logits = hub_support.probe_logits(AutoModelForCausalLM.from_pretrained(str(merged_dir)), tokenizer)
    from_gguf = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="model.gguf")
    assert max_difference(hub_support.probe_logits(from_gguf, tokenizer), merged_logits) <= tolerance
    reader = gguf.GGUFReader(str(tmp_path / "model.gguf"))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == len(tokenizer)
    assert bytes(tokens.parts[tokens.data[5]]).decode("utf-8") == tokenizer.convert_ids_to_tokens(5)
