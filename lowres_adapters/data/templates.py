"""Relation templates: knowledge-graph edges -> sentences ``"{start} {predicate} {end}."``.

The default English predicates are the 33 of arXiv 2502.10140 (ConceptNet 5.7); edges with any
other relation are dropped. Templates are pluggable: pass a :class:`RelationTemplates` of your own,
or a JSON file ``{"language": "nya", "predicates": {"IsA": "ndi mtundu wa", ...}}`` for
target-language predicates. A predicate holding ``{start}`` and ``{end}`` is a whole pattern, for
languages whose word order or spacing differs (``"{start}是一种{end}"``, ``"слово {start} — синоним
слова {end}"``); ``end_mark`` is appended (``"。"`` for Chinese).

A package (a language pack or a graph plugin) ships its templates as a JSON file inside the package
and users name it ``"package:path/in/package.json"`` (e.g. ``lowres_kg_cldr:templates/zho.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from lowres_adapters.data.examples import Edge
from lowres_adapters.errors import InputError

ENGLISH_PREDICATES: Mapping[str, str] = MappingProxyType({
    "Antonym": "is the opposite of",
    "DerivedFrom": "is derived from",
    "EtymologicallyDerivedFrom": "is etymologically derived from",
    "EtymologicallyRelatedTo": "is etymologically related to",
    "FormOf": "is a form of",
    "PartOf": "is a part of",
    "HasA": "belongs to",
    "UsedFor": "is used for",
    "AtLocation": "is a typical location for",
    "Causes": "causes",
    "CausesDesire": "makes someone want",
    "MadeOf": "is made of",
    "ReceivesAction": "receives action of",
    "HasSubevent": "is a subevent of",
    "HasFirstSubevent": "is an event that begins with subevent",
    "HasLastSubevent": "is an event that concludes with subevent",
    "HasPrerequisite": "has prerequisite of",
    "HasProperty": "can be described as",
    "MotivatedByGoal": "is a step toward accomplishing the goal",
    "ObstructedBy": "is an obstacle in the way of",
    "Desires": "is a conscious entity that typically wants",
    "CreatedBy": "is a process or agent that creates",
    "CapableOf": "is capable of",
    "HasContext": "is a word used in the context of",
    "IsA": "is a type of",
    "RelatedTo": "is related to",
    "SimilarTo": "is similar to",
    "Synonym": "is a synonym of",
    "SymbolOf": "symbolically represents",
    "DefinedAs": "is a more explanatory version of",
    "DistinctFrom": "is distinct from",
    "MannerOf": "is a specific way to do",
    "LocatedNear": "is typically found near",
})


@dataclass(frozen=True)
class RelationTemplates:
    """Predicates per relation, in one language.

    Attributes:
        predicates: Relation name (e.g. ``"IsA"``) -> predicate placed between the two terms.
        language: ISO 639-3 code of the predicates.
        end_mark: Appended to every sentence.
    """

    predicates: Mapping[str, str] = field(default_factory=lambda: ENGLISH_PREDICATES)
    language: str = "eng"
    end_mark: str = "."

    def verbalise(self, edge: Edge) -> str | None:
        """Return the sentence for ``edge``, or None when its relation has no template."""
        predicate = self.predicates.get(edge.relation)
        if predicate is None or not edge.start or not edge.end:
            return None
        if is_pattern(predicate):
            return predicate.replace("{start}", edge.start).replace("{end}", edge.end) + self.end_mark
        return f"{edge.start} {predicate} {edge.end}{self.end_mark}"


def is_pattern(predicate: str) -> bool:
    """Return whether ``predicate`` is a whole sentence pattern (it places ``{start}`` and ``{end}``)."""
    return "{start}" in predicate and "{end}" in predicate


ENGLISH_TEMPLATES = RelationTemplates()


def _packaged_file(spec: str) -> tuple[Path, str] | None:
    """Return ``(path, text)`` of ``"package:path/in/package.json"``, or None when ``spec`` is no such name."""
    package, _, inner = spec.partition(":")
    if not inner or not package.replace("_", "").replace(".", "").isalnum() or Path(spec).exists():
        return None
    try:
        resource = resources.files(package).joinpath(inner)
    except (ModuleNotFoundError, TypeError):
        raise InputError(Path(spec), None, f"expected an installed package {package!r} holding {inner}") from None
    if not resource.is_file():
        raise InputError(Path(spec), None, f"expected a templates file {inner} inside the package {package!r}")
    return Path(spec), resource.read_text("utf-8")


def load_templates(spec: str = "") -> RelationTemplates:
    """Return templates: the English default for ``""``/``"eng"``, a file packaged with a package
    (``"package:path.json"``), else read a JSON file.

    The JSON is ``{"language": CODE, "predicates": {relation: predicate or pattern}, "end_mark": "."}``
    (``end_mark`` optional); a pattern must hold both ``{start}`` and ``{end}``.

    Raises:
        InputError: When the file is missing or not of that form.
    """
    if spec in ("", "eng", "en"):
        return ENGLISH_TEMPLATES
    packaged = _packaged_file(spec)
    if packaged is not None:
        path, text = packaged
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(path, None, "expected a templates JSON file, 'package:file.json' in an installed "
                                         "package, or 'eng' for the English predicates")
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(path, None, f"expected UTF-8 JSON ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, error.lineno, f"expected JSON ({error.msg})") from None
    predicates = data.get("predicates") if isinstance(data, dict) else None
    if not isinstance(predicates, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and value.strip() for key, value in predicates.items()
    ):
        raise InputError(path, None, 'expected {"language": CODE, "predicates": {"IsA": "...", ...}}')
    half = sorted(key for key, value in predicates.items() if ("{start}" in value) != ("{end}" in value))
    if half:
        raise InputError(path, None, f"expected both {{start}} and {{end}} in the pattern of {', '.join(half)}")
    return RelationTemplates(predicates=MappingProxyType(dict(predicates)),
                             language=str(data.get("language", "und")), end_mark=str(data.get("end_mark", ".")))
