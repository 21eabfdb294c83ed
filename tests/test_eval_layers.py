"""Layer-wise analysis: weight deltas by type and layer, merged LoRA, adapter norms, linear CKA."""

from __future__ import annotations

import math

import pytest
import torch

from _eval_runs import save_tiny_base, write_tiny_run
from lowres_adapters.artifact import read_tensors
from lowres_adapters.errors import LowresError
from lowres_adapters.runs.analysis import analyze, layerwise_cka
from lowres_adapters.evaluation.layers import (
    adapter_layer_norms,
    group_by_kind,
    layer_index,
    linear_cka,
    parameter_kind,
    weight_changes,
)
from lowres_adapters.runs.snapshots import load_snapshot
from lowres_adapters.testing.tiny import TINY_CORPUS


@pytest.mark.parametrize("name,kind,layer", [
    ("model.embed_tokens.weight", "embedding/output", None),
    ("lm_head.weight", "embedding/output", None),
    ("model.layers.3.self_attn.q_proj.weight", "attention", 3),
    ("model.layers.11.mlp.down_proj.weight", "mlp", 11),
    ("model.layers.0.input_layernorm.weight", "norm", 0),
    ("model.norm.weight", "norm", None),
    ("bert.encoder.layer.2.attention.output.dense.weight", "attention", 2),
    ("bert.encoder.layer.2.attention.output.LayerNorm.weight", "norm", 2),
    ("bert.encoder.layer.2.intermediate.dense.weight", "mlp", 2),
    ("bert.encoder.layer.2.output.dense.weight", "mlp", 2),
    ("roberta.embeddings.word_embeddings.weight", "embedding/output", None),
])
def test_parameters_are_typed_and_located_by_name(name, kind, layer):
    assert parameter_kind(name) == kind
    assert layer_index(name) == layer


def test_weight_changes_by_hand():
    before = {"model.layers.0.mlp.up_proj.weight": torch.ones(2, 2),
              "model.embed_tokens.weight": torch.ones(3, 2),
              "model.layers.0.self_attn.q_proj.weight": torch.ones(2, 2)}
    after = {"model.layers.0.mlp.up_proj.weight": torch.tensor([[1.0, 1.0], [1.0, 4.0]]),
             "model.embed_tokens.weight": torch.cat([torch.ones(3, 2), torch.full((2, 2), 9.0)]),
             "model.layers.0.self_attn.q_proj.weight": torch.ones(2, 2)}
    changes = {change.name: change for change in weight_changes(before, after)}
    mlp = changes["model.layers.0.mlp.up_proj.weight"]
    assert mlp.delta_norm == pytest.approx(3.0) and mlp.base_norm == pytest.approx(2.0)
    assert mlp.relative == pytest.approx(1.5)
    embedding = changes["model.embed_tokens.weight"]
    assert embedding.added_rows == 2 and embedding.delta_norm == 0.0  # new rows are not a change
    grouped = group_by_kind(list(changes.values()))
    assert grouped["mlp"].relative == pytest.approx(1.5)
    assert grouped["attention"].relative == 0.0


def test_group_norms_aggregate_frobenius_norms():
    before = {f"model.layers.{i}.mlp.up_proj.weight": torch.ones(4) for i in range(2)}
    after = {"model.layers.0.mlp.up_proj.weight": torch.ones(4) * 2, "model.layers.1.mlp.up_proj.weight": torch.ones(4)}
    group = group_by_kind(weight_changes(before, after))["mlp"]
    assert group.delta_norm == pytest.approx(2.0)  # sqrt(2^2 + 0^2)
    assert group.base_norm == pytest.approx(math.sqrt(8))


def test_linear_cka_is_invariant_to_rotation_and_scale_and_low_for_unrelated():
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(200, 16, generator=generator)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=generator))
    assert linear_cka(states, states) == pytest.approx(1.0)
    assert linear_cka(states, 3.0 * states @ rotation + 1.0) == pytest.approx(1.0)
    assert linear_cka(states, torch.randn(200, 16, generator=generator)) < 0.2


def test_adapter_layer_norms_group_by_block():
    tensors = {"model.layers.0.a": torch.full((2,), 3.0), "model.layers.0.b": torch.full((1,), 4.0) * 0 + 4,
               "model.layers.10.a": torch.ones(1), "prompt.embedding": torch.ones(4)}
    norms = adapter_layer_norms(tensors)
    assert list(norms) == ["0", "10", "-"]
    assert norms["0"] == pytest.approx(math.sqrt(9 + 9 + 16))
    assert norms["-"] == pytest.approx(2.0)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("base"))


def test_merged_lora_change_is_exactly_b_times_a(tiny_base, tmp_path):
    run = write_tiny_run(tmp_path / "run", tiny_base, adapter_type="lora")
    result = analyze("base", run)
    assert result["merged"] is True
    assert result["ranking"][0] == "attention"
    assert result["by_kind"]["mlp"]["delta_norm"] == 0.0
    tensors = read_tensors(run)
    prefix = "model.layers.1.self_attn.q_proj.loras.nya."
    expected = float((tensors[prefix + "lora_B"] @ tensors[prefix + "lora_A"]).norm())  # alpha / r = 1
    reported = {t["name"]: t["delta_norm"] for t in result["top_tensors"]}
    assert reported["model.layers.1.self_attn.q_proj.weight"] == pytest.approx(expected, rel=1e-4)
    assert set(result["adapter_norms"]) == {"0", "1"}


def test_unmergeable_adapter_keeps_base_weights_and_reports_its_own_norms(tiny_base, tmp_path):
    run = write_tiny_run(tmp_path / "run", tiny_base, adapter_type="seq_bn")
    result = analyze("base", run)
    assert result["merged"] is False
    assert all(group["delta_norm"] == 0.0 for group in result["by_kind"].values())
    assert set(result["adapter_norms"]) == {"0", "1"}
    assert all(norm > 0 for norm in result["adapter_norms"].values())


def test_full_fine_tuning_is_compared_weight_by_weight(tiny_base, tmp_path):
    run = write_tiny_run(tmp_path / "run", tiny_base, adapter_type="full", scale=0.01)
    result = analyze("base", run)
    assert result["trains_base_weights"] is True and result["adapter_norms"] == {}
    assert set(result["ranking"]) == {"embedding/output", "attention", "mlp", "norm"}
    assert all(group["delta_norm"] > 0 for group in result["by_kind"].values())
    tensors = read_tensors(run)
    base = load_snapshot(str(tiny_base)).weights
    name = "model.layers.1.mlp.down_proj.weight"
    expected = float((tensors[name] - base[name]).norm())
    reported = {t["name"]: t["delta_norm"] for t in analyze("base", run, top=1000)["top_tensors"]}
    assert reported[name] == pytest.approx(expected, rel=1e-4)


def test_second_stage_compares_with_the_first_not_with_base(tiny_base, tmp_path):
    cpt = write_tiny_run(tmp_path / "stages" / "cpt", tiny_base, recipe="cpt")
    sft = write_tiny_run(tmp_path / "stages" / "sft", tiny_base, recipe="sft", init_from=cpt, seed=2, scale=0.01)
    with pytest.raises(LowresError, match="second stage"):
        analyze("base", sft)
    result = analyze(cpt, sft)
    base_to_cpt = analyze("base", cpt)
    assert 0 < result["by_kind"]["attention"]["delta_norm"] < base_to_cpt["by_kind"]["attention"]["delta_norm"]
    assert set(result["adapter_change_norms"]) == {"0", "1"}


def test_cka_is_one_for_the_same_model_and_drops_where_lora_acts(tiny_base, tmp_path):
    snapshot = load_snapshot(str(tiny_base))
    same = layerwise_cka(snapshot, snapshot, list(TINY_CORPUS))
    assert same["level"] == "token"
    assert same["per_layer"] == pytest.approx([1.0] * 3)
    run = write_tiny_run(tmp_path / "run", tiny_base, adapter_type="lora", scale=0.5)
    result = analyze("base", run, texts=list(TINY_CORPUS))
    per_layer = result["cka"]["per_layer"]
    assert per_layer[0] == pytest.approx(1.0)  # embeddings untouched by LoRA on q, v
    assert per_layer[-1] < 0.999
