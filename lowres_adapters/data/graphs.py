"""Edges of any knowledge graph -> sentences, through relation templates.

Graph sources (plugins such as ``lowres-kg-conceptnet`` or ``lowres-kg-cldr``) yield
:class:`~lowres_adapters.data.examples.Edge` objects; :func:`verbalise_edges` turns each edge whose
relation has a template into one sentence in the language of its start node. The ``graph``
recipe and the ``graph_sentences`` source use it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from lowres_adapters.data.examples import Edge, Provenance, TextExample
from lowres_adapters.data.languages import to_iso639_3
from lowres_adapters.data.templates import RelationTemplates


def verbalise_edges(edges: Iterable[Edge], templates: RelationTemplates, languages: tuple[str, ...] = (),
                    source_name: str = "") -> Iterator[TextExample]:
    """Turn edges into template sentences, one :class:`TextExample` per edge with a template.

    Args:
        edges: Edges from any graph source.
        templates: Predicates per relation; edges with other relations are dropped.
        languages: Keep only edges whose start node is in one of these languages (ISO 639-1 or
            639-3, as the graph gives them or converted); empty keeps all.
        source_name: Provenance name (defaults to each edge's own).

    Each example's ``lang`` is the ISO 639-3 code of the start node; provenance is marked
    synthetic because the sentence is generated from a template.
    """
    wanted = {to_iso639_3(code) for code in languages}
    for edge in edges:
        lang = to_iso639_3(edge.start_lang)
        if wanted and lang not in wanted:
            continue
        sentence = templates.verbalise(edge)
        if sentence is None:
            continue
        provenance = Provenance(source_name or edge.provenance.source, edge.provenance.licence, synthetic=True,
                                detail=f"templates={templates.language}; {edge.provenance.detail}")
        yield TextExample(text=sentence, id=edge.id, lang=lang, provenance=provenance)


def group_by_language(examples: Iterable[TextExample]) -> dict[str, list[TextExample]]:
    """Group sentences by their (start-node) language."""
    groups: dict[str, list[TextExample]] = defaultdict(list)
    for example in examples:
        groups[example.lang].append(example)
    return dict(groups)
