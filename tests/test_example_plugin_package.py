"""The plugin-author guide's example package works as documented."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from lowres_adapters.errors import InputError
from lowres_adapters.registry import Registry
from lowres_adapters.specs import AlignmentInputs

PACKAGE = Path(__file__).parents[1] / "examples" / "plugin_package"


@pytest.fixture
def example_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(PACKAGE))
    module = importlib.import_module("lowres_example_plugin")
    yield module
    sys.modules.pop("lowres_example_plugin", None)


def test_pyproject_declares_the_entry_point() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["lowres_adapters"] == {"example": "lowres_example_plugin"}


def test_registers_a_loss_and_a_source(example_module, empty_registry: Registry) -> None:
    info = empty_registry.add_plugin(example_module)
    assert info.registered == {"alignment_losses": ["l1"], "data_sources": ["id_text"]}
    loss = empty_registry.alignment_loss("l1")
    loss_fn = loss.build(loss.config_class())
    same = torch.randn(4, 8)
    assert loss_fn(AlignmentInputs(student_pooled=same, teacher_pooled=same)).item() == pytest.approx(0.0)
    other = loss_fn(AlignmentInputs(student_pooled=same, teacher_pooled=-same)).item()
    assert other > 0.1


def test_source_streams_and_reports_bad_lines(example_module, empty_registry: Registry,
                                              tmp_path: Path) -> None:
    empty_registry.add_plugin(example_module)
    source = empty_registry.data_source("id_text")
    good = tmp_path / "good.tsv"
    good.write_text("a1\tMoni dziko\na2\tZikomo kwambiri\n", encoding="utf-8")
    examples = list(source.open(source.config_class(path=str(good), lang="nya")))
    assert [e.id for e in examples] == ["a1", "a2"] and examples[1].text == "Zikomo kwambiri"
    bad = tmp_path / "bad.tsv"
    bad.write_text("a1\tMoni\nonly-one-column\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.tsv:2: expected 2 tab-separated columns"):
        list(source.open(source.config_class(path=str(bad), lang="nya")))


def test_the_example_imports_only_the_plugin_api_and_passes_the_kits(example_module, tmp_path: Path) -> None:
    from test_plugin_imports import library_imports

    from lowres_adapters.plugin import AlignmentLoss, DataSource, check_alignment_loss, check_data_source

    assert library_imports(PACKAGE) == {"lowres_adapters.plugin"}
    check_alignment_loss(AlignmentLoss(name="l1", config_class=example_module.L1Config,
                                       build=example_module.build_l1, description="example"))
    good, bad = tmp_path / "good.tsv", tmp_path / "bad.tsv"
    good.write_text("a1\tMoni dziko\na2\tZikomo kwambiri\n", encoding="utf-8")
    bad.write_text("a1\tMoni\nonly-one-column\n", encoding="utf-8")
    source = DataSource(name="id_text", config_class=example_module.IdTextConfig, open=example_module.read_id_text,
                        yields="text", description="example")
    config = example_module.IdTextConfig
    check_data_source(source, config(path=str(good), lang="nya"), bad_config=config(path=str(bad), lang="nya"))
