"""The conformance check: every built-in passes it, and broken adapter types fail the right check."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lowres_adapters.builtin.adapter_types import BUILTIN_ADAPTER_TYPES
from lowres_adapters.builtin.adapterhub_configs import PrefixTuningConfig
from lowres_adapters.builtin.adapterhub_types import attach_adapterhub
from lowres_adapters.handles import ParameterSetAdapter
from lowres_adapters.specs import AdapterType
from lowres_adapters.testing.conformance import ConformanceError, check_adapter_type


@pytest.mark.parametrize("type_name", sorted(spec.name for spec in BUILTIN_ADAPTER_TYPES))
def test_builtin_type_conforms(type_name):
    report = check_adapter_type(type_name)
    assert report.adapter_type == type_name
    # every built-in but full fine-tuning can switch itself off (prompt-align's teacher needs it)
    assert report.disables == {"llama": type_name != "full", "xlmr": type_name != "full"}
    assert set(report.trainable) == {"llama", "xlmr"}
    assert all(count > 0 for count in report.trainable.values())
    assert "xlmr: save -> load gives identical outputs" in report.passed
    assert "llama: padding does not change a row's outputs" in report.passed


def test_conformance_on_bert_too():
    report = check_adapter_type("seq_bn_inv", kinds=("bert",))
    assert report.native_files["bert"] == ["adapter.safetensors", "adapter_config.json"]


# --- throwaway broken types: each must fail the check that catches its bug ----------------------


@dataclass(frozen=True)
class BiasConfig:
    """Settings of the throwaway type (none)."""


def _last_bias_names(model):
    return [name for name, _ in model.named_parameters() if name.endswith("bias")][-1:]


class HidesAParameter(ParameterSetAdapter):
    def activate(self):
        super().activate()
        self.model.get_input_embeddings().weight.requires_grad_(True)  # trains, but is not declared


class SavesTheEmbedding(ParameterSetAdapter):
    def adapter_state_dict(self):
        state = super().adapter_state_dict()
        state["embedding"] = self.model.get_input_embeddings().weight.detach()
        return state


class PretendsToDisable(ParameterSetAdapter):
    def _switch_off(self):
        return lambda: None  # claims to switch off, changes nothing (the bug)


class ForgetsToLoad(ParameterSetAdapter):
    def load_adapter_state_dict(self, tensors):
        """Accept the tensors and do nothing (the bug)."""


def _layer_norm_type(name, handle_class):
    def attach(model, adapter_name, config):
        names = [n for n, _ in model.named_parameters() if "norm" in n.lower() and n.endswith("weight")][-1:]
        return handle_class(model, adapter_name, config, names)

    return AdapterType(name=name, config_class=BiasConfig, attach=attach, description="throwaway type for tests")


@pytest.mark.parametrize(("handle_class", "failed_check"), [
    (HidesAParameter, "declared parameters train"),
    (SavesTheEmbedding, "adapter_state_dict is exactly what trains"),
    (ForgetsToLoad, "save -> load gives identical outputs"),
    (PretendsToDisable, "disabled\\(\\) gives the base model's outputs"),
])
def test_broken_type_fails_the_named_check(handle_class, failed_check):
    spec = _layer_norm_type("broken", handle_class)
    with pytest.raises(ConformanceError, match=f"broken: llama: {failed_check}"):
        check_adapter_type(spec, kinds=("llama",))


def test_a_well_behaved_throwaway_type_passes():
    report = check_adapter_type(_layer_norm_type("final_norm", ParameterSetAdapter), kinds=("llama", "bert"))
    assert report.trainable == {"llama": 32, "bert": 32}


def test_upstream_prefix_tuning_under_sdpa_is_caught():
    """adapters' prefix tuning masks the prefix out of padded Llama batches under SDPA attention."""
    spec = AdapterType(name="raw_prefix", config_class=PrefixTuningConfig, attach=attach_adapterhub,
                       description="AdapterHub prefix tuning without the eager-attention switch")
    with pytest.raises(ConformanceError, match="raw_prefix: llama: forward and backward: every gradient is zero"):
        check_adapter_type(spec, kinds=("llama",))


def test_a_config_that_does_not_round_trip_fails():
    @dataclass(frozen=True)
    class SetConfig:
        values: frozenset = frozenset({1})

    spec = AdapterType(name="set_config", config_class=SetConfig,
                       attach=lambda model, name, config: None, description="throwaway")
    with pytest.raises(ConformanceError, match="set_config: config: round-trip"):
        check_adapter_type(spec)


def test_an_added_parameter_that_is_not_declared_is_caught():
    def attach(model, name, config):
        import torch

        model.register_parameter("extra_a", torch.nn.Parameter(torch.zeros(3)))
        model.register_parameter("extra_b", torch.nn.Parameter(torch.zeros(3)))  # added, never declared
        norm = [n for n, _ in model.named_parameters() if "norm" in n.lower() and n.endswith("weight")][-1:]
        return ParameterSetAdapter(model, name, config, ["extra_a", *norm])

    spec = AdapterType(name="hides_extra", config_class=BiasConfig, attach=attach, description="throwaway")
    with pytest.raises(ConformanceError, match="hides_extra: llama: every added parameter is declared.*extra_b"):
        check_adapter_type(spec, kinds=("llama",))


def test_a_type_that_cannot_disable_is_recorded_not_failed():
    report = check_adapter_type(_layer_norm_type("final_norm", ParameterSetAdapter), kinds=("llama",))
    assert report.disables == {"llama": False}
