"""benchmarks/layerwise.py on tiny saved cpt_sft runs whose changes are planted in known blocks."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from lowres_adapters.artifact import ArtifactMetadata, attach_from_artifact, read_tensors, write_artifact
from lowres_adapters.models import load_base_model
from lowres_adapters.registry import get_registry
from lowres_adapters.testing.tiny import tiny_model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "layerwise.py"
LAYERS = 6  # thirds: blocks 0-1, 2-3, 4-5


def _load_script():
    spec = importlib.util.spec_from_file_location("layerwise_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layerwise = _load_script()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    directory = tmp_path_factory.mktemp("base")
    model, tokenizer = tiny_model("llama", num_hidden_layers=LAYERS)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def _write_stage(run_dir: Path, base_dir: Path, recipe: str, plants: dict[str, float],
                 init_from: Path | None = None) -> Path:
    """Write a full fine-tuning run folder whose weights moved only where ``plants`` says (name part -> scale)."""
    model, _ = load_base_model(str(base_dir))
    spec = get_registry().adapter_type("full")
    if init_from is not None:
        handle = attach_from_artifact(model, init_from)
    else:
        handle = spec.attach(model, "dzo", spec.config_class())
        handle.activate()
    generator = torch.Generator().manual_seed(len(plants) + len(recipe))
    with torch.no_grad():
        for name, parameter in handle.trainable_parameters().items():
            for part, scale in plants.items():
                if part in name:
                    parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    metadata = ArtifactMetadata(adapter_type="full", adapter_name=handle.name, adapter_config={}, plugin=None,
                                base_model=str(base_dir), objective="clm", language="dzo", script="Tibt",
                                recipe=recipe, metrics={})
    write_artifact(run_dir, handle, metadata, native=False)
    return run_dir


@pytest.fixture(scope="module")
def planted_run(tiny_base, tmp_path_factory):
    """CPT moves late MLPs a lot, an early MLP and early attention less, a late attention least; SFT moves the
    middle attention only."""
    run = tmp_path_factory.mktemp("run")
    cpt = _write_stage(run / "stages" / "cpt", tiny_base, "cpt",
                       {"layers.4.mlp.": 0.05, "layers.5.mlp.": 0.05, "layers.0.mlp.": 0.005,
                        "layers.0.self_attn.": 0.002, "layers.1.self_attn.": 0.002, "layers.5.self_attn.": 0.0005})
    _write_stage(run / "stages" / "sft", tiny_base, "sft", {"layers.2.self_attn.": 0.01, "layers.3.self_attn.": 0.01},
                 init_from=cpt)
    (run / "run_config.json").write_text(json.dumps({"stages": ["cpt", "sft"]}))
    return run


def test_thirds_cover_every_block_once_in_order():
    assert layerwise.split_thirds(range(30)) == {"early": list(range(10)), "middle": list(range(10, 20)),
                                                 "late": list(range(20, 30))}
    assert layerwise.split_thirds([6, 0, 5, 1, 4, 2, 3]) == {"early": [0, 1, 2], "middle": [3, 4], "late": [5, 6]}


def test_planted_changes_land_in_their_blocks_and_thirds(planted_run, tiny_base, tmp_path):
    results_dir = tmp_path / "results"
    assert layerwise.main(["--run", f"tiny={planted_run}", "--cka-texts", "0", "--results", str(results_dir)]) == 0
    result = json.loads((results_dir / "layerwise.json").read_text())
    cpt, sft = (result["runs"]["tiny"]["comparisons"][title] for title in ("base -> cpt", "cpt -> sft"))

    assert cpt["thirds"]["mlp"]["most"] == "late" and cpt["thirds"]["attention"]["most"] == "early"
    assert cpt["thirds"]["mlp"]["middle"]["delta_norm"] == 0.0 < cpt["thirds"]["mlp"]["early"]["delta_norm"]
    assert cpt["thirds"]["mlp"]["late"]["blocks"] == [4, 5]
    assert cpt["thirds"]["norm"]["most"] is None  # nothing moved
    assert [block["block"] for block in cpt["top_blocks"]][:2] in ([4, 5], [5, 4])
    assert sft["thirds"]["attention"]["most"] == "middle" and "mlp" not in [k for k, t in sft["thirds"].items()
                                                                          if t["most"]]
    assert sorted(block["block"] for block in sft["top_blocks"]) == [2, 3]
    assert sft["ranking"][0] == "attention"

    # a third's figure is the Frobenius norm over its tensors, checked against the saved weights
    base = load_base_model(str(tiny_base))[0].state_dict()
    tensors = read_tensors(planted_run / "stages" / "cpt")
    late_mlp = [name for name in tensors if ".mlp." in name and (".layers.4." in name or ".layers.5." in name)]
    expected = math.sqrt(sum(float((tensors[name] - base[name]).double().norm()) ** 2 for name in late_mlp))
    base_norm = math.sqrt(sum(float(base[name].double().norm()) ** 2 for name in late_mlp))
    assert cpt["thirds"]["mlp"]["late"]["delta_norm"] == pytest.approx(expected, rel=1e-5)
    assert cpt["thirds"]["mlp"]["late"]["relative"] == pytest.approx(expected / base_norm, rel=1e-5)
    block_4 = [name for name in tensors if ".layers.4." in name]
    assert cpt["block_totals"]["4"]["delta_norm"] == pytest.approx(
        math.sqrt(sum(float((tensors[name] - base[name]).double().norm()) ** 2 for name in block_4)), rel=1e-5)

    markdown = (results_dir / "layerwise.md").read_text()
    assert "| base -> cpt | mlp |" in markdown and "late (blocks 4-5)" in markdown
    plots = [results_dir / path for title in ("base -> cpt", "cpt -> sft")
             for path in result["runs"]["tiny"]["comparisons"][title]["plots"]]
    assert plots and all(path.suffix == ".png" and 0 < path.stat().st_size < 300_000 for path in plots)


def test_bad_run_argument_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        layerwise.main(["--run", "no-equals-sign"])
    assert "LABEL=RUN_DIR" in capsys.readouterr().err
