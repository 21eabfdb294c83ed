"""The custom adapter type example in docs/adapters.md runs and passes the conformance check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_adapter_type.py"


@pytest.fixture
def example_module():
    spec = importlib.util.spec_from_file_location("custom_adapter_type_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_example_registers_a_conformant_type(example_module, capsys):
    from lowres_adapters.registry import get_registry

    trainable = example_module.main()
    # Llama: 2 layers x 2 RMSNorms x 32 + final norm 32; XLM-R: 2 layers x 2 LayerNorms x (32 + 32)
    # + embedding and LM-head LayerNorms.
    assert trainable == {"llama": 5 * 32, "xlmr": 6 * 64}
    assert "ln_tuning" in get_registry().names("adapter_types")
    assert "ok  xlmr: save -> load gives identical outputs" in capsys.readouterr().out


def test_example_type_can_leave_outside_norms_frozen(example_module):
    from lowres_adapters.testing.tiny import tiny_model

    model, _ = tiny_model("xlmr")
    handle = example_module.attach_ln_tuning(model, "norms", example_module.LnTuningConfig(outside_layers=False))
    assert len(handle.trainable_parameters()) == 2 * 2 * 2
    assert all(".layer." in name for name in handle.trainable_parameters())
