"""Built-in data sources, registered through the same hook as any plugin's."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.data.hub_dataset import HubDatasetConfig, open_hub_dataset
from lowres_adapters.data.parallel import ParallelSourceConfig, open_parallel
from lowres_adapters.data.synthetic import (
    GraphSentencesConfig,
    LexiconSubstitutionConfig,
    open_graph_sentences,
    open_lexicon_substitution,
)
from lowres_adapters.data.text import TextSourceConfig, open_text
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.specs import DataSource


@hookimpl
def register_data_sources(register: Callable[[DataSource], None]) -> None:
    """Register the text, parallel, graph-sentence, Hub and synthetic sources (graphs come from plugins)."""
    register(DataSource(
        name="text", config_class=TextSourceConfig, open=open_text, yields="text",
        description="Monolingual text (.txt/.jsonl/.gz/folders): NFC, dedup, length and script filters, splits"))
    register(DataSource(
        name="parallel", config_class=ParallelSourceConfig, open=open_parallel, yields="pairs",
        description="Parallel text (TSV, JSONL or two Moses files) with a length-ratio filter; ids kept"))
    register(DataSource(
        name="graph_sentences", config_class=GraphSentencesConfig, open=open_graph_sentences, yields="text",
        description="Template sentences from any edge source (synthetic)"))
    register(DataSource(
        name="hub_dataset", config_class=HubDatasetConfig, open=open_hub_dataset, yields="text",
        description="A Hub dataset (e.g. GlotCC) streamed through `datasets` when installed"))
    register(DataSource(
        name="synthetic", config_class=LexiconSubstitutionConfig, open=open_lexicon_substitution, yields="pairs",
        description="Pseudo-parallel pairs by bilingual-lexicon substitution (synthetic)"))
