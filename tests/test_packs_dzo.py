"""Dzongkha pack: paragraph extraction, alignment, page splits and the module task; the apt route."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from packfakes import FAKE_APT, build_deb, install_fake_tool, prepend_path

from lowres_lang_dzo.help_pages import PARAGRAPHS_FILE, fetch, page_paragraphs
from lowres_lang_dzo.load import MODULES, build_module_task, build_pairs, load

from lowres_adapters.data.cache import read_jsonl, write_jsonl
from lowres_adapters.data.packs import apt_download
from lowres_adapters.errors import LowresError

PAGE = """<html><body><div id="DisplayArea">
<h1 id="hd_id1">{title}</h1>
<p id="par_id2" class="paragraph">{body}<br/><span class="emph">{emph}</span></p>
<p id="other">not aligned</p>
</div></body></html>"""
TEXTS = {
    "dz": ("ལག་ཆས་ཚུ།", "དཀར་ཆག་ཚུ།", "གསརཔ།"),
    "zh-CN": ("工具", "工具菜单", "新建"),
    "en-US": ("Tools", "The Tools menu", "New"),
}


def test_paragraphs_keep_nested_text_and_skip_unaligned_ids(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(PAGE.format(title="Tools", body="The  Tools\nmenu", emph="New"), encoding="utf-8")
    assert page_paragraphs(page) == {"hd_id1": "Tools", "par_id2": "The Tools menu New"}


def _rows():
    rows = []
    for i, module in enumerate(MODULES * 6):
        page = f"{module}/page{i}.html"
        rows.append({"page": page, "module": module, "id": "par_1", "dzo": f"ཡིག་ཆ་ {i} ཁ་ཐོག",
                     "zho": f"文件 {i} 上", "eng": f"File {i} on"})
    rows.append({"page": "scalc/dup.html", "module": "scalc", "id": "par_9", "dzo": "ཡིག་ཆ་ 0 ཁ་ཐོག", "zho": "文件 0 上",
                 "eng": "File 0 on"})
    rows.append({"page": "swriter/amb.html", "module": "swriter", "id": "par_1", "dzo": "འདྲ་མཚུངས", "zho": "相同",
                 "eng": "Same"})
    rows.append({"page": "scalc/amb.html", "module": "scalc", "id": "par_1", "dzo": "འདྲ་མཚུངས", "zho": "相同",
                 "eng": "Same"})
    rows.append({"page": "shared/untranslated.html", "module": "shared", "id": "par_1", "dzo": "File", "zho": "文件",
                 "eng": "File"})
    return rows


def test_pairs_are_unique_split_by_page_and_in_the_right_scripts():
    rows = [row for row in _rows() if row["dzo"] != "File"]
    splits = build_pairs(rows, "zho")
    pages_of = {name: {pair.id.split("#")[0] for pair in pairs} for name, pairs in splits.items()}
    assert not pages_of["train"] & pages_of["test"]
    all_pairs = [pair for pairs in splits.values() for pair in pairs]
    assert len({(p.source, p.target) for p in all_pairs}) == len(all_pairs)
    assert {(p.source_lang, p.target_lang) for p in all_pairs} == {("zho", "dzo")}
    latin_source = [dict(row, zho="File only") for row in rows]
    assert sum(len(pairs) for pairs in build_pairs(latin_source, "zho").values()) == 0


def test_module_task_drops_ambiguous_texts():
    task = build_module_task(_rows())
    examples = [e for split in task.splits.values() for e in split]
    assert task.kind == "sequence_classification" and task.labels == MODULES
    assert "འདྲ་མཚུངས" not in {e.text for e in examples}
    assert {e.label for e in examples} == set(MODULES)


def test_load_uses_translated_dzongkha_only(tmp_path):
    write_jsonl(tmp_path / PARAGRAPHS_FILE, _rows())
    data = load(tmp_path)
    texts = {e.text for split in data.text.values() for e in split}
    assert "File" not in texts and "ཡིག་ཆ་ 0 ཁ་ཐོག" in texts
    assert {p.source_lang for split in data.pairs.values() for p in split} == {"zho", "eng"}
    assert set(data.text) == {"train", "validation", "test"}


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    debs = tmp_path / "debs"
    debs.mkdir()
    for folder, package in (("dz", "libreoffice-help-dz"), ("zh-CN", "libreoffice-help-zh-cn"),
                            ("en-US", "libreoffice-help-en-us")):
        title, body, emph = TEXTS[folder]
        tree = {f"usr/share/libreoffice/help/{folder}/text/{module}/main.html":
                PAGE.format(title=f"{title} {module}", body=body, emph=emph) for module in ("scalc", "swriter")}
        tree[f"usr/share/doc/{package}/copyright"] = "License: MPL-2.0\n"
        build_deb(tree, package, debs)
    install_fake_tool(tmp_path / "bin", "apt-get", FAKE_APT)
    prepend_path(monkeypatch, tmp_path / "bin")
    monkeypatch.setenv("FAKE_DEBS", str(debs))
    return debs


def test_fetch_through_apt_route_aligns_by_page_and_id(fake_apt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fetch(out)
    rows = list(read_jsonl(out / PARAGRAPHS_FILE))
    assert [(r["page"], r["id"], r["zho"], r["eng"]) for r in rows] == [
        ("scalc/main.html", "hd_id1", "工具 scalc", "Tools scalc"),
        ("scalc/main.html", "par_id2", "工具菜单 新建", "The Tools menu New"),
        ("swriter/main.html", "hd_id1", "工具 swriter", "Tools swriter"),
        ("swriter/main.html", "par_id2", "工具菜单 新建", "The Tools menu New"),
    ]
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert [p["version"] for p in provenance] == ["1:7.4-test"] * 3 and provenance[0]["licence"] == "MPL-2.0"
    assert "MPL-2.0" in (out / "LICENSE-libreoffice-help.txt").read_text(encoding="utf-8")


def test_apt_lists_are_updated_once_when_root_else_told(fake_apt, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NEEDS_UPDATE", "1")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LowresError, match=r"route apt libreoffice-help-dz failed: .* run `sudo apt-get update`"):
        apt_download(["libreoffice-help-dz"], tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert [p.name for p in apt_download(["libreoffice-help-dz"], tmp_path)] == ["libreoffice-help-dz_7.4-test_all.deb"]
    assert (fake_apt / "updated").exists()


@pytest.mark.integration
def test_real_dzongkha_data_from_the_cache():
    from lowres_adapters import paths
    from lowres_adapters.data.packs import load_pack_data

    if not (paths.data_dir("dzo") / "manifest.json").exists():
        pytest.skip("run `lowres data fetch dzo` (make data) first")
    data = load_pack_data("dzo")
    counts = {}
    for pairs in data.pairs.values():
        for pair in pairs:
            counts[pair.source_lang] = counts.get(pair.source_lang, 0) + 1
    assert 14000 < counts["zho"] < 17500 and 15000 < counts["eng"] < 18000
    pages = {name: {e.id.split("#")[0] for e in examples} for name, examples in data.text.items()}
    assert not pages["train"] & pages["test"]
    assert len(data.tasks["help_module"].labels) == 8
