"""Native copies: a published repo loads with PEFT's own ``from_pretrained`` (``peft_lora`` type and the
AdapterHub LoRA export) and with ``adapters``' own ``load_adapter`` (AdapterHub types), each giving the
logits of the library's ``load`` (tiny models, loopback Hub only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hub_support
from hub_support import ALICE
from lowres_adapters import hub
from lowres_adapters.artifact import write_artifact
from lowres_adapters.models import load_base_model
from lowres_adapters.registry import get_registry, reset_registry
from lowres_adapters.training.run_folder import build_metadata

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def base_id(tmp_path_factory) -> str:
    reset_registry(None)
    base_dir = hub_support.save_tiny_base(tmp_path_factory.mktemp("native-base"))
    return hub_support.publish_tiny_base(base_dir, "alice/tiny-base-native")


def published_run(tmp_path: Path, base_id: str, adapter_type: str, repo_id: str) -> Path:
    """Attach ``adapter_type`` with random (non-zero) weights, write its run folder and publish it."""
    reset_registry(None)
    model, _ = load_base_model(base_id)
    handle = get_registry().adapter_type(adapter_type).attach(model, "nya", get_registry().adapter_type(
        adapter_type).config_class())
    generator = torch.Generator().manual_seed(3)
    handle.load_adapter_state_dict({key: torch.randn(value.shape, generator=generator) * 0.3
                                    for key, value in handle.adapter_state_dict().items()})
    metadata = build_metadata(handle=handle, adapter_type=adapter_type, model_id=base_id, objective="clm",
                              language="nya", script="Latn", recipe="language", recipe_settings={}, metrics={},
                              datasets=[])
    run_dir = tmp_path / adapter_type
    write_artifact(run_dir, handle, metadata)
    hub.publish(run_dir, repo_id, token=ALICE)
    return run_dir


def logits_of(model, tokenizer) -> torch.Tensor:
    return hub_support.probe_logits(model, tokenizer)


@pytest.mark.parametrize("adapter_type", ["peft_lora", "lora"])
def test_peft_from_pretrained_and_auto_peft_give_the_logits_of_load(base_id, tmp_path, adapter_type) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from peft import AutoPeftModelForCausalLM, PeftModel

    repo_id = f"alice/native-{adapter_type.replace('_', '-')}"
    run_dir = published_run(tmp_path, base_id, adapter_type, repo_id)
    native = json.loads((run_dir / "adapterhub" / "adapter_config.json").read_text("utf-8"))
    assert native.get("base_model_name_or_path", native.get("model_name")) == base_id  # in the run folder too
    files = set(HfApi(token=ALICE).list_repo_files(repo_id))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    peft_config = json.loads(Path(hf_hub_download(repo_id, "adapter_config.json", token=ALICE)).read_text())
    assert peft_config["base_model_name_or_path"] == base_id  # the real id, never a cache folder
    card = Path(hf_hub_download(repo_id, "README.md", token=ALICE)).read_text("utf-8")
    assert "library_name: peft" in card and "base_model_relation: adapter" in card

    model, tokenizer = hub.load(repo_id, token=ALICE)
    expected = logits_of(model, tokenizer)
    base, _ = load_base_model(base_id)
    assert (logits_of(base, tokenizer) - expected).abs().max() > 1e-2  # the adapter acts
    peft_model = PeftModel.from_pretrained(load_base_model(base_id)[0], repo_id, token=ALICE).eval()
    assert (logits_of(peft_model, tokenizer) - expected).abs().max() <= TOLERANCE
    auto = AutoPeftModelForCausalLM.from_pretrained(repo_id, token=ALICE).eval()
    assert (logits_of(auto, tokenizer) - expected).abs().max() <= TOLERANCE
    if adapter_type == "peft_lora":  # the run folder's own PEFT files load too
        local = AutoPeftModelForCausalLM.from_pretrained(str(run_dir / "adapterhub"), token=ALICE).eval()
        assert (logits_of(local, tokenizer) - expected).abs().max() <= TOLERANCE


@pytest.mark.parametrize("adapter_type", ["lora", "ia3", "seq_bn"])
def test_adapterhub_types_load_with_adapters_load_adapter(base_id, tmp_path, adapter_type) -> None:
    import adapters
    from huggingface_hub import snapshot_download

    repo_id = f"alice/native-ah-{adapter_type.replace('_', '-')}"
    published_run(tmp_path, base_id, adapter_type, repo_id)
    model, tokenizer = hub.load(repo_id, token=ALICE)
    expected = logits_of(model, tokenizer)
    # a local folder: adapters' load_adapter falls back to an outside host for ids it cannot resolve
    folder = Path(snapshot_download(repo_id, allow_patterns=["adapterhub/*"], token=ALICE)) / "adapterhub"
    assert json.loads((folder / "adapter_config.json").read_text())["model_name"] == base_id
    base, _ = load_base_model(base_id)
    adapters.init(base)
    name = base.load_adapter(str(folder), use_safetensors=True)
    base.set_active_adapters(name)
    assert (logits_of(base.eval(), tokenizer) - expected).abs().max() <= TOLERANCE
