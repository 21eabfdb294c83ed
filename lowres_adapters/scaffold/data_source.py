"""Template of ``lowres new data-source NAME``: a streaming reader of ``id<TAB>text`` files."""

from __future__ import annotations


def defaults(name: str) -> dict[str, str]:
    """Return the kind-specific placeholders."""
    return {"__LABEL__": "data source", "__MODULE__": "source", "__SPEC__": "__UPPER___SOURCE",
            "__HOOK__": "register_data_sources",
            "__DESCRIPTION__": f"The {name} data source for lowres-adapters",
            "__TRY__": f"lowres info {name}"}


SOURCE = '''"""The __NAME__ data source: ``id<TAB>text`` lines, streamed one by one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lowres_adapters.plugin import DataSource, InputError, LowresError, Provenance, TextExample, normalize_text


@dataclass(frozen=True)
class __CLASS__Config:
    """Settings of __NAME__.

    Attributes:
        path: The file to read (UTF-8, one ``id<TAB>text`` per line).
        lang: ISO 639-3 code of the text.
        licence: Licence of the corpus, recorded on every example.
    """

    path: str = ""
    lang: str = ""
    licence: str = "unknown"


def open___NAME__(config: __CLASS__Config) -> Iterator[TextExample]:
    """Yield one TextExample per line; a malformed line raises InputError naming the file and line."""
    if not config.path or not config.lang:
        raise LowresError("__NAME__ needs path=FILE and lang=ISO_639_3_CODE")
    provenance = Provenance(source=Path(config.path).name, licence=config.licence)
    with open(config.path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            identifier, tab, text = line.rstrip("\\n").partition("\\t")
            if not tab or not identifier or not text.strip():
                raise InputError(config.path, number, "id<TAB>text")
            yield TextExample(text=normalize_text(text), id=identifier, lang=config.lang, provenance=provenance)


__UPPER___SOURCE = DataSource(name="__NAME__", config_class=__CLASS__Config, open=open___NAME__, yields="text",
                              description="__NAME__: id<TAB>text files, streamed")
'''

TESTS = '''"""__NAME__ passes lowres-adapters' data-source kit."""

from lowres_adapters.plugin import check_data_source

from __PKG__.source import __CLASS__Config, __UPPER___SOURCE


def test___NAME___conforms(tmp_path):
    good, bad = tmp_path / "good.tsv", tmp_path / "bad.tsv"
    good.write_text("a1\\tMoni dziko\\na2\\tZikomo kwambiri\\n", encoding="utf-8")
    bad.write_text("a1\\tMoni dziko\\nno tab on this line\\n", encoding="utf-8")
    report = check_data_source(__UPPER___SOURCE, __CLASS__Config(path=str(good), lang="nya"),
                               bad_config=__CLASS__Config(path=str(bad), lang="nya"))
    assert report.trainable["items"] == 2
'''

FILES = {"__PKG__/source.py": SOURCE, "tests/test___NAME__.py": TESTS}
