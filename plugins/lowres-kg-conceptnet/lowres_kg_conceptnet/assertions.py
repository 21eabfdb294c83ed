"""ConceptNet 5.x assertions CSV(.gz) -> :class:`~lowres_adapters.data.examples.Edge` objects -> template sentences.

Format (tab-separated, five columns): edge URI, relation URI, start URI, end URI, JSON info.
Rules (arXiv 2502.10140, with the released code's term bug fixed):

- the term is the 4th URI component, ``/c/en/read/v`` -> ``read`` (not ``split('/')[-1]``,
  which yields the part-of-speech tag), underscores become spaces;
- edges whose end is an external URL (``http...``) and self-loops are dropped;
- sentences are grouped by the language of the start node; the end node may be in any language.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from lowres_adapters.plugin import (
    Edge,
    InputError,
    LowresError,
    Provenance,
    TextExample,
    atomic_write,
    iter_lines,
    load_templates,
    to_iso639_3,
    verbalise_edges,
)

CONCEPTNET_LICENCE = "CC-BY-SA-4.0"
ASSERTION_COLUMNS = 5


def concept_parts(uri: str) -> tuple[str, str] | None:
    """Return ``(language, term)`` of a concept URI ``/c/<lang>/<term>[/<pos>...]``, else None."""
    parts = uri.split("/")  # ["", "c", lang, term, pos?, ...]
    if len(parts) < 4 or parts[1] != "c" or not parts[2] or not parts[3]:
        return None
    return parts[2], parts[3].replace("_", " ").strip()


def relation_name(uri: str) -> str:
    """Return ``IsA`` for ``/r/IsA`` (and ``dbpedia/genre`` for ``/r/dbpedia/genre``)."""
    return uri[3:] if uri.startswith("/r/") else uri


def iter_assertions(path: str | Path) -> Iterator[Edge]:
    """Stream the edges of a ConceptNet assertions CSV(.gz), applying the rules above.

    Raises:
        InputError: On a line without five tab-separated columns, invalid UTF-8, or a truncated ``.gz``.
    """
    path = Path(path)
    provenance = Provenance("conceptnet", CONCEPTNET_LICENCE, detail=str(path))
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != ASSERTION_COLUMNS:
            raise InputError(path, line_number, f"expected {ASSERTION_COLUMNS} tab-separated columns "
                             f"(edge, relation, start, end, info), found {len(cells)}")
        edge_uri, relation_uri, start_uri, end_uri, _info = cells
        if end_uri.startswith(("http:", "https:")) or start_uri == end_uri:
            continue
        start, end = concept_parts(start_uri), concept_parts(end_uri)
        if start is None or end is None or start[1] == end[1] and start[0] == end[0]:
            continue
        yield Edge(start=start[1], relation=relation_name(relation_uri), end=end[1], start_lang=start[0],
                   end_lang=end[0], id=edge_uri, provenance=provenance)


@dataclass(frozen=True)
class ConceptNetConfig:
    """Settings of the ``conceptnet`` and ``conceptnet_edges`` data sources.

    Attributes:
        path: ConceptNet assertions CSV, optionally ``.gz`` (e.g. ``conceptnet-assertions-5.7.0.csv.gz``).
        languages: Keep edges whose start node is in these languages (empty: all).
        templates: ``"eng"`` for the 33 English predicates, or a templates JSON file.
    """

    path: str = ""
    languages: tuple[str, ...] = ()
    templates: str = "eng"


def open_conceptnet_edges(config: ConceptNetConfig) -> Iterator[Edge]:
    """Stream the edges of the assertions file, filtered by start-node language."""
    if not config.path:
        raise LowresError("the conceptnet source needs path=ASSERTIONS_CSV")
    wanted = {to_iso639_3(code) for code in config.languages}
    for edge in iter_assertions(config.path):
        if not wanted or to_iso639_3(edge.start_lang) in wanted:
            yield edge


def open_conceptnet(config: ConceptNetConfig) -> Iterator[TextExample]:
    """Stream template sentences from the assertions file."""
    templates = load_templates(config.templates)
    return verbalise_edges(open_conceptnet_edges(config), templates, config.languages)


def concept_uri(lang: str, term: str) -> str:
    """Return the ConceptNet URI of a term (spaces back to underscores)."""
    return f"/c/{lang}/{term.replace(' ', '_')}"


def write_assertions(edges: Iterable[Edge], path: str | Path) -> int:
    """Write edges as a ConceptNet assertions CSV (``.gz`` by suffix), atomically; return the count.

    The info column is ``{}``: weights and sources are not carried by :class:`Edge`.
    """
    path = Path(path)
    count = 0
    with atomic_write(path, "wb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.name.endswith(".gz") else raw
        for edge in edges:
            start, end = concept_uri(edge.start_lang, edge.start), concept_uri(edge.end_lang, edge.end)
            edge_id = edge.id if edge.id.startswith("/a/") else f"/a/[/r/{edge.relation}/,{start}/,{end}/]"
            line = "\t".join((edge_id, f"/r/{edge.relation}", start, end, "{}")) + "\n"
            stream.write(line.encode("utf-8"))
            count += 1
        if stream is not raw:
            stream.close()
    return count
