"""Evaluation on the real SmolLM2-135M and the real Chichewa pack (short)."""

from __future__ import annotations

import json

import pytest
import torch

from lowres_adapters.artifact import ArtifactMetadata, write_artifact
from lowres_adapters.errors import LowresError
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.registry import get_registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_lora_run(tmp_path_factory):
    """A run folder with a LoRA adapter on the real model (random small weights, no training)."""
    from lowres_adapters.data.packs import load_pack_data

    try:
        load_pack_data("nya")
    except LowresError as error:
        pytest.skip(f"Chichewa data not fetched ({error}); run `make data`")
    model, _ = load_base_model(DEFAULT_MODEL)
    spec = get_registry().adapter_type("lora")
    handle = spec.attach(model, "nya", spec.config_class())
    handle.activate()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in handle.trainable_parameters().values():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    run = tmp_path_factory.mktemp("real") / "run"
    metadata = ArtifactMetadata(adapter_type="lora", adapter_name="nya", adapter_config={}, plugin=None,
                                base_model=DEFAULT_MODEL, objective="clm", language="nya", script="Latn",
                                recipe="language")
    write_artifact(run, handle, metadata, native=False)
    (run / "run_config.json").write_text(json.dumps({"settings": {"data": {"eval_examples": 300}}}))
    return run


def test_real_run_is_evaluated_on_the_pack_with_chrf(real_lora_run):
    from lowres_adapters.runs.evaluate import evaluate_run

    torch.set_num_threads(1)
    results = evaluate_run(real_lora_run, max_examples=6, translation_examples=2, num_beams=1,
                           max_new_tokens=12, layers=False)
    assert results["translation_direction"] == "eng->nya"
    assert 1.0 < results["base"]["bits_per_char"] < 8.0
    assert results["adapted"]["bits_per_char"] != results["base"]["bits_per_char"]
    assert {"chrf", "chrf_pp", "bleu"} <= set(results["adapted"])


def test_real_lora_analysis_moves_only_attention(real_lora_run):
    from lowres_adapters.runs.analysis import analyze

    result = analyze("base", real_lora_run, texts=["Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi."])
    assert result["merged"] is True and result["ranking"][0] == "attention"
    assert result["by_kind"]["mlp"]["delta_norm"] == 0.0
    assert len(result["adapter_norms"]) == 30  # one per SmolLM2 block
    assert len(result["cka"]["per_layer"]) == 31 and result["cka"]["per_layer"][0] == pytest.approx(1.0)
