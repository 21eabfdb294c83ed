"""The `hub_dataset` source: a clear error without `datasets`, streaming through it when present."""

from __future__ import annotations

import sys
import types

import pytest

from lowres_adapters.data.hub_dataset import HubDatasetConfig, open_hub_dataset
from lowres_adapters.errors import LowresError


def test_missing_datasets_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(LowresError, match=r"pip install 'lowres-adapters\[datasets\]'"):
        list(open_hub_dataset(HubDatasetConfig(repo_id="org/corpus", lang="nya")))


def test_streams_rows_through_load_dataset(monkeypatch):
    calls = {}

    def load_dataset(repo_id, name, split, streaming, revision):
        calls.update(repo_id=repo_id, name=name, split=split, streaming=streaming, revision=revision)
        return iter([{"text": "Moni  bwanji"}, {"text": ""}, {"text": "Zikomo\u0301"}, {"text": "third"}])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    config = HubDatasetConfig(repo_id="cis-lmu/GlotCC-V1", name="nya-Latn", lang="nya", revision="abc", limit=2)
    examples = list(open_hub_dataset(config))
    assert [(e.id, e.text) for e in examples] == [("train:0", "Moni bwanji"), ("train:2", "Zikomó")]
    assert calls == {"repo_id": "cis-lmu/GlotCC-V1", "name": "nya-Latn", "split": "train", "streaming": True,
                     "revision": "abc"}
