"""The ``graph`` recipe's free-text mix: its share (in characters), where the texts go, where they come
from, what a run without free text does, and the run wiring on a tiny model."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from training_support import tiny_run_files

from lowres_adapters import hookimpl
from lowres_adapters.data.examples import Edge, PackData, TextExample
from lowres_adapters.data.text import open_text_file
from lowres_adapters.errors import LowresError
from lowres_adapters.specs import DataSource
from lowres_adapters.training.adapt import adapt
from lowres_adapters.training.recipes.graph import TEXT_OPTION_NAMES, GraphOptions, GraphRecipe, free_texts

GRAPH = [TextExample(f"mawu{i} ndi chizindikiro{i}.", f"g{i}", "nya") for i in range(60)]
FREE = [TextExample(f"Ili ndi vesi lachilendo nambala {i} la buku.", f"t{i}", "nya") for i in range(200)]
HELD_OUT = [TextExample(f"Vesi losungidwa nambala {i}.", f"h{i}", "nya") for i in range(5)]


def pack(train=FREE, test=HELD_OUT) -> PackData:
    return PackData(text={"train": list(train), "test": list(test)} if train else {"test": list(test)})


def context_for(options: GraphOptions, data: PackData) -> SimpleNamespace:
    splits = {"train": list(GRAPH), "validation": GRAPH[:3], "test": GRAPH[3:6]}
    return SimpleNamespace(options=options, data=data, language="nya", state={"graph_sentences": splits},
                           settings=SimpleNamespace(data=SimpleNamespace(max_train_examples=None)))


def chars(examples) -> int:
    return sum(len(example.text) for example in examples)


def free_share(examples) -> float:
    return chars(e for e in examples if e.id.startswith("t")) / chars(examples)


@pytest.mark.parametrize("share", [0.25, 0.5, 0.75])
def test_the_mix_reaches_the_share_in_characters_and_spreads_evenly(share):
    train, validation = GraphRecipe().training_texts(context_for(GraphOptions(text_share=share), pack()))
    assert validation == GRAPH[:3]  # validation stays graph sentences
    assert [e for e in train if e.id.startswith("g")] == GRAPH  # every graph sentence, in order
    assert free_share(train) == pytest.approx(share, abs=0.02)
    quarter = len(train) // 4
    for start in range(0, 4 * quarter, quarter):  # every quarter of the run holds about the share
        assert free_share(train[start:start + quarter]) == pytest.approx(share, abs=0.08)
    taken = [int(e.id[1:]) for e in train if e.id.startswith("t")]
    assert taken == sorted(taken) and taken[0] < 10 and taken[-1] > 185  # evenly across the source, not its start


def test_share_zero_leaves_the_graph_job_as_before():
    context = context_for(GraphOptions(text_share=0.0), pack())
    train, validation = GraphRecipe().training_texts(context)
    assert train == GRAPH and validation == GRAPH[:3]
    assert context.state["free_text"] == []
    # the base model's figures do not depend on the mix: one cached entry for a sweep over shares
    options = GraphRecipe().base_score_options(SimpleNamespace(options=GraphOptions(text_share=0.5)))
    assert not set(TEXT_OPTION_NAMES) & set(options) and "templates" in options


def test_no_free_text_is_a_one_line_note_and_training_goes_on_graph_only(caplog):
    context = context_for(GraphOptions(text_share=0.5), pack(train=[]))
    with caplog.at_level(logging.WARNING, logger="lowres_adapters.training"):
        train, _ = GraphRecipe().training_texts(context)
    assert train == GRAPH
    notes = [record.getMessage() for record in caplog.records]
    assert len(notes) == 1 and "no free nya text" in notes[0] and "graph sentences only" in notes[0]
    assert "\n" not in notes[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lowres_adapters.training"):
        GraphRecipe().training_texts(context_for(GraphOptions(text_share=0.0), pack(train=[])))
    assert not caplog.records  # share 0 asked for no free text: nothing to say


def test_held_out_texts_are_never_mixed_in():
    leaked = FREE[:100] + HELD_OUT + FREE[100:]
    texts, _ = free_texts(GraphOptions(), pack(train=leaked), "nya", 10**9)
    assert texts == FREE  # the source is smaller than wanted: all of it but the held-out texts


def test_a_streamed_text_file_gives_the_same_texts_as_a_list(tmp_path):
    corpus = tmp_path / "train.txt"
    corpus.write_text("".join(example.text + "\n" for example in FREE), encoding="utf-8")
    wanted = 1000
    from_list, _ = free_texts(GraphOptions(), pack(), "nya", wanted)
    streamed = PackData(text={"train": open_text_file(corpus, "nya"), "test": HELD_OUT})
    from_file, where = free_texts(GraphOptions(), streamed, "nya", wanted)
    assert [e.text for e in from_file] == [e.text for e in from_list] and where == str(corpus)
    assert abs(chars(from_file) - wanted) <= len(FREE[0].text)


def test_text_source_file_and_bad_name(tmp_path):
    corpus = tmp_path / "other.txt"
    corpus.write_text("".join(example.text + "\n" for example in FREE), encoding="utf-8")
    texts, _ = free_texts(GraphOptions(text_source=str(corpus)), pack(train=[]), "nya", 1000)
    assert texts and {e.lang for e in texts} == {"nya"} and {e.provenance.source for e in texts} == {"other.txt"}
    index = {example.text: number for number, example in enumerate(FREE)}
    assert index[texts[0].text] < 10 and index[texts[-1].text] > 185  # evenly across the file, as the run text
    with pytest.raises(LowresError, match=r"text_source 'missing.txt': expected '' \(the run's training text\)") as caught:
        free_texts(GraphOptions(text_source="missing.txt"), pack(), "nya", 1000)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="text_share"):
        GraphOptions(text_share=1.0)


@dataclass(frozen=True)
class MixGraphConfig:
    """Settings of the throwaway graph source.

    Attributes:
        languages: Start-node languages to keep.
    """

    languages: tuple[str, ...] = ()


def mix_edges(config: MixGraphConfig):
    words = [("madzi", "water"), ("moto", "fire"), ("nyumba", "house"), ("mtengo", "tree"), ("dzuwa", "sun")]
    for index, (word, english) in enumerate(words * 4):
        for lang in ("ny", "tum"):
            yield Edge(word, "Synonym", english, lang, "en", f"/{lang}/{index}")


class MixGraphPlugin:
    @hookimpl
    def register_data_sources(self, register):
        register(DataSource(name="mix_graph", config_class=MixGraphConfig, open=mix_edges, yields="edges",
                            description="tiny test graph"))


@pytest.fixture
def files(tmp_path):
    from lowres_adapters.registry import get_registry

    values = tiny_run_files(tmp_path)
    get_registry().add_plugin(MixGraphPlugin(), name="mix_graph_plugin")
    return values, tmp_path


def run_graph(files, name: str, language: str = "nya", with_text: bool = True, **options):
    values, tmp = files
    arguments = dict(model=values["model"], adapter="toy", eval_text=values["eval_text"], progress=False, lr=1e-2)
    if with_text:
        arguments["text"] = values["text"]
    output = tmp / name
    result = adapt(language, recipe="graph", max_steps=2, output=str(output), loop={"packing": False},
                   recipe_options={"source": "mix_graph", **options}, **arguments)
    start = json.loads((output / "train_log.jsonl").read_text().splitlines()[0])
    return result, start["train_examples"]


def test_graph_run_mixes_the_run_text_in_and_records_it(files):
    graph_only, graph_examples = run_graph(files, "g0", text_share=0.0)
    mixed, mixed_examples = run_graph(files, "g5", text_share=0.5)
    assert mixed_examples > graph_examples
    mix = mixed.metrics["adapted"]["graph_free_text"]
    assert mix["texts"] == mixed_examples - graph_examples and mix["share"] == pytest.approx(0.5, abs=0.1)
    assert graph_only.metrics["adapted"]["graph_free_text"]["texts"] == 0
    assert "graph_free_text" not in mixed.metrics["base"]
    from lowres_adapters.artifact import read_metadata

    assert read_metadata(files[1] / "g5").datasets == ["mix_graph", "train.txt"]


def test_graph_run_without_free_text_notes_it_and_trains(files, caplog):
    with caplog.at_level(logging.WARNING, logger="lowres_adapters.training"):
        result, examples = run_graph(files, "tum", language="tum", with_text=False)
    assert [r.getMessage() for r in caplog.records if "no free tum text" in r.getMessage()]
    assert result.metrics["adapted"]["graph_free_text"]["texts"] == 0 and examples > 0
