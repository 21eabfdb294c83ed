"""Synthetic pseudo-data, always marked ``synthetic=True`` in its provenance.

- *Lexicon substitution*: words of high-resource sentences are replaced by their translations
  from a bilingual lexicon, giving (original, pseudo-translation) pairs.
- *Graph sentences*: edges from any registered edge source (graph plugins provide them)
  verbalised with relation templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.examples import PairExample, Provenance, TextExample
from lowres_adapters.data.files import iter_lines, normalize_text
from lowres_adapters.data.graphs import verbalise_edges
from lowres_adapters.data.languages import validate_language
from lowres_adapters.data.templates import load_templates
from lowres_adapters.data.text import TextSourceConfig, open_text
from lowres_adapters.errors import InputError, LowresError
from lowres_adapters.registry import get_registry

WORD = re.compile(r"\w+(?:['’-]\w+)*", re.UNICODE)


def read_lexicon(path: str | Path) -> dict[str, str]:
    """Read a bilingual lexicon TSV (``source_word<TAB>target_word``); the first entry of a word wins.

    Keys are case-folded so that sentence-initial capitals still match.

    Raises:
        InputError: On a line without exactly two non-empty columns.
    """
    lexicon: dict[str, str] = {}
    for line_number, line in iter_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != 2 or not cells[0].strip() or not cells[1].strip():
            raise InputError(path, line_number, "expected 2 non-empty tab-separated columns (source word, target word)")
        lexicon.setdefault(normalize_text(cells[0]).casefold(), normalize_text(cells[1]))
    return lexicon


def substitute(sentence: str, lexicon: dict[str, str]) -> tuple[str, float]:
    """Replace every word found in ``lexicon``; return the new sentence and the share replaced."""
    words = replaced = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal words, replaced
        words += 1
        translation = lexicon.get(match.group(0).casefold())
        if translation is None:
            return match.group(0)
        replaced += 1
        return translation

    result = WORD.sub(replace, sentence)
    return result, (replaced / words if words else 0.0)


@dataclass(frozen=True)
class LexiconSubstitutionConfig:
    """Settings of the ``synthetic`` data source (lexicon substitution).

    Attributes:
        text_path: High-resource sentences (a ``text`` source file or folder).
        lexicon_path: Bilingual lexicon TSV, ``source_word<TAB>target_word``.
        source_lang: ISO 639-3 code of the sentences.
        target_lang: ISO 639-3 code of the lexicon's translations.
        min_coverage: Keep a pseudo-pair only when at least this share of its words was replaced.
    """

    text_path: str = ""
    lexicon_path: str = ""
    source_lang: str = ""
    target_lang: str = ""
    min_coverage: float = 0.5

    def __post_init__(self) -> None:
        for code in (self.source_lang, self.target_lang):
            if code:
                validate_language(code)
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError("min_coverage must be between 0 and 1")


def open_lexicon_substitution(config: LexiconSubstitutionConfig) -> Iterator[PairExample]:
    """Stream (sentence, pseudo-translation) pairs marked synthetic."""
    if not (config.text_path and config.lexicon_path and config.source_lang and config.target_lang):
        raise LowresError("the synthetic source needs text_path, lexicon_path, source_lang and target_lang")
    lexicon = read_lexicon(config.lexicon_path)
    provenance = Provenance("lexicon-substitution", "derived", synthetic=True,
                            detail=f"lexicon={config.lexicon_path}; min_coverage={config.min_coverage}")
    for example in open_text(TextSourceConfig(path=config.text_path, lang=config.source_lang)):
        pseudo, coverage = substitute(example.text, lexicon)
        if coverage > 0 and coverage >= config.min_coverage:
            yield PairExample(source=example.text, target=pseudo, source_lang=config.source_lang,
                              target_lang=config.target_lang, id=f"synthetic:{example.id}", provenance=provenance)


@dataclass(frozen=True)
class GraphSentencesConfig:
    """Settings of the ``graph_sentences`` data source.

    Attributes:
        graph: Name of a registered data source that yields ``edges`` (required; graph plugins provide them).
        graph_config: Settings for that source (its config fields).
        languages: Keep edges whose start node is in these languages (empty: all).
        templates: ``"eng"`` for the English predicates, or a templates JSON file.
    """

    graph: str = ""
    graph_config: dict[str, Any] = field(default_factory=dict)
    languages: tuple[str, ...] = ()
    templates: str = "eng"


def open_graph_sentences(config: GraphSentencesConfig) -> Iterator[TextExample]:
    """Stream template sentences from the edges of another registered source."""
    if not config.graph:
        raise LowresError("graph_sentences needs graph=NAME, a data source that yields edges (see 'lowres list sources')")
    source = get_registry().data_source(config.graph)
    if source.yields != "edges":
        raise LowresError(f"data source {config.graph!r} yields {source.yields}, not edges")
    graph_config = config_from_dict(source.config_class, dict(config.graph_config), where=config.graph)
    return verbalise_edges(source.open(graph_config), load_templates(config.templates), config.languages,
                           source_name=config.graph)
