"""The conformance kits for losses, data sources and language packs: built-ins pass, each bug fails its check."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from lowres_adapters.plugin import (
    AlignmentLoss,
    ConformanceError,
    DataSource,
    InputError,
    LanguagePack,
    PackData,
    PairExample,
    Provenance,
    SourceInfo,
    TextExample,
    check_alignment_loss,
    check_data_source,
    check_language_pack,
    record_provenance,
    write_jsonl,
)


@dataclass(frozen=True)
class NoConfig:
    """Nothing to set."""


@pytest.mark.parametrize("name", ["mse", "cosine", "kl", "infonce"])
def test_builtin_losses_conform(name: str) -> None:
    assert len(check_alignment_loss(name).passed) == 5


def _loss(name: str, function) -> AlignmentLoss:
    return AlignmentLoss(name=name, config_class=NoConfig, build=lambda config: function, description="throwaway")


@pytest.mark.parametrize(("function", "failed"), [
    (lambda i: ((i.student_pooled - i.teacher_pooled) ** 2).mean(), "teacher none.*detach"),
    (lambda i: ((i.student_pooled - i.teacher_pooled.detach()) ** 2).mean(dim=-1), "not a scalar"),
    (lambda i: i.student_pooled.std(dim=0).mean() + (i.student_pooled - i.teacher_pooled.detach()).abs().mean(),
     "batch of 1: .*not finite"),
    (lambda i: -((i.student_pooled - i.teacher_pooled.detach()) ** 2).mean(), "lower when the student equals"),
])
def test_a_broken_loss_fails_the_named_check(function, failed: str) -> None:
    with pytest.raises(ConformanceError, match=f"broken_loss: .*{failed}"):
        check_alignment_loss(_loss("broken_loss", function))


@dataclass(frozen=True)
class LinesConfig:
    """A file of lines."""

    path: str = ""


def _read_lines(config: LinesConfig):
    for number, line in enumerate(Path(config.path).read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            raise InputError(config.path, number, "a non-empty line")
        yield TextExample(text=unicodedata.normalize("NFC", line), id=f"line-{number}", lang="xyz")


def _source(open_function) -> DataSource:
    return DataSource(name="lines", config_class=LinesConfig, open=open_function, yields="text", description="t")


@pytest.fixture
def line_files(tmp_path: Path) -> tuple[LinesConfig, LinesConfig]:
    (tmp_path / "good.txt").write_text("one line\nanother line\n", "utf-8")
    (tmp_path / "bad.txt").write_text("one line\n\n", "utf-8")
    return LinesConfig(str(tmp_path / "good.txt")), LinesConfig(str(tmp_path / "bad.txt"))


def test_a_streaming_source_with_one_line_errors_conforms(line_files) -> None:
    good, bad = line_files
    report = check_data_source(_source(_read_lines), good, bad_config=bad)
    assert report.trainable["items"] == 2 and "bad input: one clear error" in report.passed


def test_builtin_text_source_conforms(tmp_path: Path) -> None:
    from lowres_adapters.data.text import TextSourceConfig

    (tmp_path / "a.txt").write_text("moni dziko lapansi\nzikomo kwambiri\n", "utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "ok"}\nnot json\n', "utf-8")
    check_data_source("text", TextSourceConfig(path=str(tmp_path / "a.txt"), lang="nya"),
                      bad_config=TextSourceConfig(path=str(tmp_path / "b.jsonl"), lang="nya"))


def test_a_source_building_a_list_or_crashing_on_bad_input_fails(line_files) -> None:
    good, bad = line_files
    with pytest.raises(ConformanceError, match="lines: open: returns an iterator.*not an iterator"):
        check_data_source(_source(lambda config: list(_read_lines(config))), good)

    def crashing(config):
        for line in Path(config.path).read_text("utf-8").splitlines():
            yield TextExample(text=line, id=line[0], lang="xyz")  # IndexError on an empty line

    with pytest.raises(ConformanceError, match="lines: bad input: one clear error: .*IndexError"):
        check_data_source(_source(crashing), good, bad_config=bad)


def _pair(number: int, split_text: str = "") -> PairExample:
    return PairExample(source=f"English {number}{split_text}", target=f"Xyz {number}{split_text}", source_lang="eng",
                       target_lang="xyz", id=f"v{number}", provenance=Provenance("corpus", licence="CC0-1.0"))


def _pack(load, record: bool = True) -> LanguagePack:
    def fetch(directory: Path) -> None:
        write_jsonl(directory / "pairs.jsonl", [{"n": n} for n in range(6)])
        if record:
            record_provenance(directory, route="bundled", licence="CC0-1.0")

    return LanguagePack(code="xyz", script="Latn", name="Xyz", description="test pack", fetch=fetch, load=load,
                        sources=(SourceInfo(name="corpus", route="bundled", licence="CC0-1.0", description="d"),))


def _honest(directory: Path) -> PackData:
    pairs = {"train": [_pair(n) for n in range(4)], "validation": [_pair(4)], "test": [_pair(5)]}
    text = {split: [TextExample(p.target, p.id, "xyz", p.provenance) for p in rows] for split, rows in pairs.items()}
    return PackData(text=text, pairs=pairs)


def test_an_honest_pack_conforms_and_counts_what_load_returned() -> None:
    report = check_language_pack(_pack(_honest))
    assert report.trainable == {"text/train": 4, "text/validation": 1, "text/test": 1,
                                "pairs/train": 4, "pairs/validation": 1, "pairs/test": 1}


@pytest.mark.parametrize(("mutate", "failed"), [
    (lambda data: data.pairs["test"].append(_pair(0, " again")), "pairs: ids unique and disjoint.*'v0'"),
    (lambda data: data.pairs["test"].append(replace(_pair(9), source="English 0", id="v9")), "no test text"),
    (lambda data: data.pairs.update(dev=data.pairs.pop("validation")), "split names \\['dev'\\]"),
    (lambda data: data.text["train"].append(TextExample("Cafe\u0301", "t9", "xyz", Provenance("c", "CC0-1.0"))),
     "text: NFC text.*'t9' is not NFC"),
    (lambda data: data.text["train"].append(TextExample("hello", "t8", "eng", Provenance("c", "CC0-1.0"))),
     "'t8' is not in 'xyz'"),
])
def test_a_dishonest_pack_fails_the_named_check(mutate, failed: str) -> None:
    def load(directory: Path) -> PackData:
        data = _honest(directory)
        mutate(data)
        return data

    with pytest.raises(ConformanceError, match=f"xyz: .*{failed}"):
        check_language_pack(_pack(load))


def test_a_pack_without_provenance_fails() -> None:
    with pytest.raises(ConformanceError, match="xyz: fetch: provenance recorded.*record_provenance"):
        check_language_pack(_pack(_honest, record=False))
