"""Pack upgrades: the cache records the pack's version; another version fetches again (or says how)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowres_adapters.data.cache import read_manifest
from lowres_adapters.data.packs import fetch_pack, load_pack_data
from lowres_adapters.errors import LowresError
from lowres_adapters.plugin import LanguagePack, PackData, SourceInfo, TextExample, hookimpl, write_jsonl
from lowres_adapters.registry import Registry


def _pack(text: str, data_version: str = "") -> LanguagePack:
    def fetch(directory: Path) -> None:
        write_jsonl(directory / "text.jsonl", [{"text": text}])

    def load(directory: Path) -> PackData:
        line = (directory / "text.jsonl").read_text("utf-8")
        return PackData(text={"test": [TextExample(text=line, id="1", lang="xyz")]})

    return LanguagePack(code="xyz", script="Latn", name="Xyz", description="versioned test pack", fetch=fetch,
                        load=load, sources=(SourceInfo("s", "bundled", "CC0-1.0", "d"),), data_version=data_version)


def _registry(pack: LanguagePack, version: str) -> Registry:
    class Plugin:
        @hookimpl
        def register_language_packs(self, register):
            register(pack)

    registry = Registry(strict=True, entry_points=False)
    registry.add_plugin(Plugin(), name="xyz_plugin", distribution="lowres-lang-xyz", version=version)
    return registry


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOWRES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_newer_pack_version_fetches_again_and_load_says_how() -> None:
    old = _registry(_pack("old words"), "1.0")
    first = fetch_pack("xyz", registry=old)
    assert first.status == "fetched" and first.manifest["pack_version"] == "1.0"
    assert fetch_pack("xyz", registry=old).status == "cached"

    new = _registry(_pack("new words"), "1.1")
    with pytest.raises(LowresError) as raised:
        load_pack_data("xyz", registry=new)
    message = str(raised.value)
    assert "\n" not in message and "pack version 1.0" in message and "1.1" in message
    assert "lowres data fetch xyz" in message

    again = fetch_pack("xyz", registry=new)
    assert again.status == "fetched" and read_manifest(again.directory)["pack_version"] == "1.1"
    assert "new words" in load_pack_data("xyz", registry=new).text["test"][0].text


def test_a_pack_declaring_its_data_version_is_not_refetched_for_a_code_release() -> None:
    assert fetch_pack("xyz", registry=_registry(_pack("words", data_version="2024.1"), "1.0")).status == "fetched"
    upgraded = _registry(_pack("words", data_version="2024.1"), "1.0.1")
    assert fetch_pack("xyz", registry=upgraded).status == "cached"
    newer_data = _registry(_pack("more words", data_version="2025.1"), "1.1")
    assert fetch_pack("xyz", registry=newer_data).status == "fetched"


def test_data_fetched_before_versions_were_recorded_is_read_from_the_requirement(cache: Path) -> None:
    registry = _registry(_pack("words"), "1.0")
    result = fetch_pack("xyz", registry=registry)
    manifest_path = result.directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["pack_version"]  # as written by older releases: only "pack": "lowres-lang-xyz==1.0"
    manifest_path.write_text(json.dumps(manifest))
    assert fetch_pack("xyz", registry=registry).status == "cached"
    assert fetch_pack("xyz", registry=_registry(_pack("words"), "2.0")).status == "fetched"
