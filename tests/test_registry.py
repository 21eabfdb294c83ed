"""The registry's rules: names, duplicates, lookups, broken plugins, lazy discovery."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from lowres_adapters import hookimpl
from lowres_adapters.errors import PluginLoadError, RegistryError
from lowres_adapters.registry import Registry
from lowres_adapters.specs import AdapterType, AlignmentLoss, DataSource, LanguagePack


@dataclass(frozen=True)
class NoConfig:
    """A config with nothing to set."""


def _attach(model, name, config):  # pragma: no cover - never called here
    raise NotImplementedError


def adapter_type(name: str, description: str = "a test adapter") -> AdapterType:
    return AdapterType(name=name, config_class=NoConfig, attach=_attach, description=description)


def plugin_registering(*specs) -> SimpleNamespace:
    """Return a throwaway plugin object registering ``specs`` through the right hooks."""
    by_hook = {}
    for spec in specs:
        hook = {
            AdapterType: "register_adapter_types",
            AlignmentLoss: "register_alignment_losses",
            DataSource: "register_data_sources",
            LanguagePack: "register_language_packs",
        }[type(spec)]
        by_hook.setdefault(hook, []).append(spec)
    namespace = {}
    for hook, hook_specs in by_hook.items():
        def implementation(register, _specs=tuple(hook_specs)):
            for spec in _specs:
                register(spec)
        implementation.__name__ = hook
        namespace[hook] = hookimpl(implementation)
    return SimpleNamespace(**namespace)


def test_registers_and_looks_up_by_name(empty_registry: Registry) -> None:
    info = empty_registry.add_plugin(plugin_registering(adapter_type("my_bn")), name="plugin_a")
    assert empty_registry.adapter_type("my_bn").description == "a test adapter"
    assert info.registered == {"adapter_types": ["my_bn"]}
    assert empty_registry.provider("adapter_types", "my_bn").name == "plugin_a"


@pytest.mark.parametrize("bad_name", ["MyBn", "1bn", "my-bn", "", "bn!"])
def test_spec_rejects_bad_names(bad_name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        adapter_type(bad_name)


def test_spec_rejects_mutable_or_undefaulted_config() -> None:
    @dataclass
    class Mutable:
        size: int = 1

    @dataclass(frozen=True)
    class NoDefault:
        size: int

    with pytest.raises(ValueError, match="must be frozen"):
        AdapterType(name="x", config_class=Mutable, attach=_attach, description="d")
    with pytest.raises(ValueError, match="needs a default"):
        AdapterType(name="x", config_class=NoDefault, attach=_attach, description="d")


def test_language_pack_code_must_be_iso_639_3() -> None:
    kwargs = dict(script="Latn", name="X", description="d", fetch=lambda d: None, load=lambda d: None)
    with pytest.raises(ValueError, match="ISO 639-3"):
        LanguagePack(code="ny", **kwargs)
    with pytest.raises(ValueError, match="ISO 15924"):
        LanguagePack(code="nya", **{**kwargs, "script": "latin"})
    assert LanguagePack(code="nya", **kwargs).code == "nya"


def test_duplicate_name_from_another_plugin_names_both(empty_registry: Registry) -> None:
    empty_registry.add_plugin(plugin_registering(adapter_type("dup")), name="first_plugin")
    with pytest.raises(PluginLoadError) as raised:
        empty_registry.add_plugin(plugin_registering(adapter_type("dup", "other")), name="second_plugin")
    message = str(raised.value)
    assert "first_plugin" in message and "second_plugin" in message and "'dup'" in message


def test_duplicate_is_recorded_not_fatal_when_not_strict() -> None:
    registry = Registry(strict=False, entry_points=False)
    registry.add_plugin(plugin_registering(adapter_type("dup")), name="first_plugin")
    info = registry.add_plugin(plugin_registering(adapter_type("dup", "other")), name="second_plugin")
    assert registry.adapter_type("dup").description == "a test adapter"
    assert any("first_plugin" in error for error in info.errors)


def test_reregistering_an_equal_spec_is_a_no_op(empty_registry: Registry) -> None:
    spec = adapter_type("same")
    empty_registry.add_plugin(plugin_registering(spec, spec), name="plugin_a")
    assert empty_registry.names("adapter_types") == ["same"]


def test_lookup_miss_lists_close_matches_and_pip_hint(empty_registry: Registry) -> None:
    empty_registry.add_plugin(plugin_registering(adapter_type("seq_bn")), name="plugin_a")
    with pytest.raises(RegistryError) as raised:
        empty_registry.adapter_type("seq_bm")
    assert "did you mean 'seq_bn'" in str(raised.value)
    with pytest.raises(RegistryError, match="pip install lowres-adapter-peft"):
        empty_registry.adapter_type("peft_vera")
    with pytest.raises(RegistryError, match="pip install lowres-lang-xho"):
        empty_registry.language_pack("xho")


def test_misspelled_hook_is_caught_by_check_pending() -> None:
    @hookimpl
    def register_adaptor_types(register):  # misspelled on purpose
        pass

    plugin = SimpleNamespace(register_adaptor_types=register_adaptor_types)
    strict = Registry(strict=True, entry_points=False)
    with pytest.raises(PluginLoadError, match="register_adaptor_types"):
        strict.add_plugin(plugin, name="typo_plugin")
    lenient = Registry(strict=False, entry_points=False)
    info = lenient.add_plugin(SimpleNamespace(register_adaptor_types=register_adaptor_types), name="typo_plugin")
    assert info.errors and "register_adaptor_types" in info.errors[0]


def test_plugin_raising_during_registration_is_isolated() -> None:
    @hookimpl
    def register_adapter_types(register):
        register(adapter_type("good_before_crash"))
        raise RuntimeError("boom")

    registry = Registry(strict=False, entry_points=False)
    broken = registry.add_plugin(SimpleNamespace(register_adapter_types=register_adapter_types), name="broken")
    registry.add_plugin(plugin_registering(adapter_type("healthy")), name="healthy_plugin")
    assert "boom" in broken.errors[0]
    assert "healthy" in registry.names("adapter_types")


def test_registering_the_wrong_spec_kind_names_the_plugin(empty_registry: Registry) -> None:
    @hookimpl
    def register_alignment_losses(register):
        register(adapter_type("not_a_loss"))

    with pytest.raises(PluginLoadError, match="wrong_kind.*expected AlignmentLoss"):
        empty_registry.add_plugin(SimpleNamespace(register_alignment_losses=register_alignment_losses),
                                  name="wrong_kind")


def _fake_distribution(root: Path, dist_name: str, module_name: str, module_source: str) -> None:
    """Write an importable module and a dist-info with an entry point in our group under ``root``."""
    (root / f"{module_name}.py").write_text(textwrap.dedent(module_source))
    dist_info = root / f"{dist_name.replace('-', '_')}-9.9.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 9.9\n")
    (dist_info / "entry_points.txt").write_text(f"[lowres_adapters]\n{module_name} = {module_name}\n")


BROKEN_PLUGIN = "raise ImportError('this plugin is broken on purpose')\n"
GOOD_PLUGIN = """
    from dataclasses import dataclass
    from lowres_adapters import hookimpl
    from lowres_adapters.specs import AdapterType

    @dataclass(frozen=True)
    class Config:
        size: int = 4

    def attach(model, name, config):
        raise NotImplementedError

    @hookimpl
    def register_adapter_types(register):
        register(AdapterType(name="entry_point_bn", config_class=Config, attach=attach,
                             description="found through an entry point"))
"""


@pytest.fixture
def installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _fake_distribution(tmp_path, "lowres-broken-plugin", "lowres_broken_plugin", BROKEN_PLUGIN)
    _fake_distribution(tmp_path, "lowres-good-plugin", "lowres_good_plugin", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("lowres_broken_plugin", "lowres_good_plugin"):
        sys.modules.pop(name, None)


def test_entry_point_discovery_records_broken_plugin(installed_plugins: Path) -> None:
    registry = Registry(strict=False)
    assert "entry_point_bn" in registry.names("adapter_types")
    by_name = {info.name: info for info in registry.plugins()}
    broken = by_name["lowres_broken_plugin"]
    assert broken.distribution == "lowres-broken-plugin" and broken.version == "9.9"
    assert "broken on purpose" in broken.errors[0]
    assert by_name["lowres_good_plugin"].registered == {"adapter_types": ["entry_point_bn"]}


def test_entry_point_discovery_is_strict_when_asked(installed_plugins: Path) -> None:
    with pytest.raises(PluginLoadError, match="lowres-broken-plugin==9.9.*broken on purpose"):
        Registry(strict=True).names("adapter_types")


def test_discovery_is_lazy_and_happens_once(installed_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lowres_adapters.registry as registry_module

    calls = []
    original = registry_module._entry_points
    monkeypatch.setattr(registry_module, "_entry_points", lambda: calls.append(1) or original())
    registry = Registry(strict=False)
    assert calls == []
    registry.names("adapter_types")
    registry.names("data_sources")
    registry.plugins()
    assert calls == [1]


CLASHING_PLUGIN = """
    from dataclasses import dataclass
    from lowres_adapters.plugin import AdapterType, AlignmentLoss, hookimpl

    @dataclass(frozen=True)
    class Config:
        size: int = 4

    def attach(model, name, config):
        raise NotImplementedError

    def build(config):
        raise NotImplementedError

    @hookimpl
    def register_adapter_types(register):
        register(AdapterType(name="lora", config_class=Config, attach=attach, description="my own lora"))
        register(AdapterType(name="clash_extra", config_class=Config, attach=attach, description="kept"))

    @hookimpl
    def register_alignment_losses(register):
        register(AlignmentLoss(name="cosine", config_class=Config, build=build, description="my cosine"))
"""


@pytest.fixture
def clashing_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # "aaa" sorts before every built-in entry point: the built-ins must still win.
    _fake_distribution(tmp_path, "aaa-clash-plugin", "aaa_clash_plugin", CLASHING_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("aaa_clash_plugin", None)


BUILTIN_TYPES = {"seq_bn", "double_seq_bn", "seq_bn_inv", "lora", "ia3", "prefix_tuning", "prompt_tuning", "full"}


def test_a_clash_with_a_builtin_is_rejected_alone(clashing_plugin: Path) -> None:
    registry = Registry(strict=False)
    assert BUILTIN_TYPES | {"clash_extra"} <= set(registry.names("adapter_types"))
    assert {"mse", "cosine", "kl", "infonce"} <= set(registry.names("alignment_losses"))
    assert registry.provider("adapter_types", "lora").builtin
    assert registry.provider("alignment_losses", "cosine").builtin
    assert registry.provider("adapter_types", "clash_extra").name == "aaa_clash_plugin"
    clash = {info.name: info for info in registry.plugins()}["aaa_clash_plugin"]
    assert len(clash.errors) == 2
    assert "adapter type 'lora' rejected" in clash.errors[0] and "aaa-clash-plugin==9.9" in clash.errors[0]
    assert "alignment loss 'cosine' rejected" in clash.errors[1]
    assert all(not info.errors for info in registry.plugins() if info.builtin)
    line = registry.warning_line()
    assert line is not None and "\n" not in line and "aaa-clash-plugin==9.9" in line


def test_strict_mode_blames_the_plugin_that_reused_a_builtin_name(clashing_plugin: Path) -> None:
    with pytest.raises(PluginLoadError) as raised:
        Registry(strict=True).names("adapter_types")
    message = str(raised.value)
    assert message.startswith("plugin 'aaa_clash_plugin' (from aaa-clash-plugin==9.9)")
    assert "'lora' rejected" in message


def test_a_clash_between_two_third_parties_keeps_the_first(empty_registry: Registry) -> None:
    registry = Registry(strict=False, entry_points=False)
    registry.add_plugin(plugin_registering(adapter_type("dup"), adapter_type("first_only")), name="first")
    second = registry.add_plugin(plugin_registering(adapter_type("dup", "other"), adapter_type("second_only")),
                                 name="second")
    assert registry.adapter_type("dup").description == "a test adapter"
    assert {"first_only", "second_only"} <= set(registry.names("adapter_types"))
    assert len(second.errors) == 1 and "'first'" in second.errors[0]
