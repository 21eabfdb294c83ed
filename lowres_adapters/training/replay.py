"""Replay: general text mixed into continual pre-training against forgetting (arXiv 2512.03976).

The ``cpt`` recipe trains on the target language's text; with ``replay_share`` > 0 a share of the
training text (counted in characters) is replayed text in the model's original language, read from
``replay_source``:

- ``"pairs"`` (default): the non-target side of the run's training pairs (e.g. the English side of
  the Chichewa pack's Bible pairs; never the test split); ``"pairs:eng"`` keeps one language;
- a registered data source yielding text (``lowres list sources``), set up by ``replay_config``;
- anything else is a text file or folder, read by the ``text`` source's reader (``replay_config``
  adds its settings, e.g. ``{lang = "eng", split = "train"}``; ``lang`` defaults to ``und``).

Replayed texts are spread evenly through the target-language texts (deterministic), so every packed
row of a run mixes both whatever part of the corpus the run reaches.

The ``graph`` recipe mixes the target language's own free text into its graph sentences with the
same helpers (:func:`evenly`, :func:`interleave`, :func:`open_source`).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.examples import PackData, PairExample, Provenance, TextExample
from lowres_adapters.data.languages import to_iso639_3
from lowres_adapters.data.text import TextSourceConfig, open_text
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry

PAIRS = "pairs"
MAX_REPLAY_TEXTS = 2_000_000
"""Read at most this many texts from a streamed source (a stop for sources of short texts)."""


def replay_chars_wanted(target_chars: int, share: float) -> int:
    """Return the characters of replayed text that make ``share`` of all training characters."""
    if not 0 <= share < 1:
        raise LowresError(f"replay_share must be in [0, 1), got {share}")
    return int(round(share / (1 - share) * target_chars))


def _other_sides(pairs: Sequence[PairExample], language: str, only: str) -> list[TextExample]:
    texts = []
    for pair in pairs:
        if pair.target_lang == language:
            lang, text = pair.source_lang, pair.source
        elif pair.source_lang == language:
            lang, text = pair.target_lang, pair.target
        else:
            continue
        if only and to_iso639_3(lang) != only:
            continue
        texts.append(TextExample(text=text, id=f"replay:{pair.id}", lang=lang, provenance=pair.provenance))
    return texts


def evenly(examples: Iterable[TextExample], wanted_chars: int, total: int | None = None) -> list[TextExample]:
    """Return texts taken evenly across ``examples`` until they hold ``wanted_chars`` (or all of them).

    Args:
        examples: The texts, in order (a list, or a stream read once when ``total`` is given).
        wanted_chars: Characters wanted.
        total: Characters of all ``examples`` (counted from a list when None).
    """
    if wanted_chars <= 0:
        return []
    if total is None:
        examples = list(examples)
        total = sum(len(example.text) for example in examples)
    if total <= wanted_chars:
        return list(examples)
    stride = total / wanted_chars  # keep about one character in ``stride``
    chosen, budget = [], 0.0
    for example in examples:
        budget += len(example.text) / stride
        if budget >= len(example.text) / 2:  # this text's turn: the kept share has grown by about one text
            chosen.append(example)
            budget -= len(example.text)
    return chosen


def _first(examples: Iterable[TextExample], wanted_chars: int) -> list[TextExample]:
    chosen, chars = [], 0
    for example in islice(examples, MAX_REPLAY_TEXTS):
        if chars >= wanted_chars:
            break
        if example.text:
            chosen.append(example)
            chars += len(example.text)
    return chosen


def open_source(source: str, config: Mapping[str, Any], option: str = "replay_source", lang: str = "und",
                expected: str = "'pairs', 'pairs:LANG', ") -> tuple[str, Callable[[], Iterator[TextExample]]]:
    """Check a registered text source or a text file/folder and return ``(name, open)``: ``open()``
    streams its texts (again on every call).

    Args:
        source: A registered data source yielding text, or a file/folder path.
        config: Settings of that data source (for a path: of the ``text`` source).
        option: The option naming ``source`` (for the one-line errors).
        lang: Language of a file's texts unless ``config`` sets ``lang``.
        expected: What else ``option`` accepts, named first in the error on an unknown name.

    Raises:
        LowresError: One line, when the source is unknown, does not yield text or its settings are bad.
    """
    registry = get_registry()
    if source in registry.names("data_sources"):
        spec = registry.data_source(source)
        if spec.yields != "text":
            raise LowresError(f"{option} {source!r} yields {spec.yields}; {option.split('_')[0]} needs a source "
                              "yielding text")
        settings = config_from_dict(spec.config_class, dict(config), where=f"recipe_options.{option.split('_')[0]}"
                                                                           f"_config for {source}")
        return source, lambda: iter(spec.open(settings))
    path = Path(source).expanduser()
    if not path.exists():
        raise LowresError(f"{option} {source!r}: expected {expected}a registered text source "
                          f"('lowres list sources') or an existing text file or folder")
    settings = config_from_dict(TextSourceConfig, {"lang": lang, **dict(config), "path": str(path)},
                                where=f"recipe_options.{option.split('_')[0]}_config for the text source")
    return path.name, lambda: open_text(settings)


def named(examples: Sequence[TextExample], name: str) -> list[TextExample]:
    """Return ``examples`` with ``name`` as the provenance of those that have none."""
    return [example if example.provenance.source not in ("", "unknown") else
            TextExample(text=example.text, id=example.id, lang=example.lang,
                        provenance=Provenance(name, example.provenance.licence))
            for example in examples]


def replay_texts(source: str, config: Mapping[str, Any], data: PackData, language: str,
                 wanted_chars: int) -> list[TextExample]:
    """Return replayed texts holding about ``wanted_chars`` characters (fewer when the source is smaller).

    Args:
        source: ``"pairs"``, ``"pairs:LANG"``, a registered text source or a file/folder path.
        config: Settings of the data source (or of the ``text`` source for a path).
        data: The run's data (its ``pairs["train"]`` for ``"pairs"``).
        language: The target language (the side of the pairs that is *not* replayed).
        wanted_chars: Characters wanted; 0 returns nothing.

    Raises:
        LowresError: One line, when the source is unknown, yields no text, or is empty.
    """
    if wanted_chars <= 0:
        return []
    kind, _, only = source.partition(":")
    if kind == PAIRS:
        examples = _other_sides(data.pairs.get("train", []), language, to_iso639_3(only) if only else "")
        if not examples:
            raise LowresError(f"replay_source {source!r}: the run has no training pairs with another side"
                              f"{' in ' + only if only else ''} (pass --pairs FILE or choose another replay_source)")
        return evenly(examples, wanted_chars)
    name, stream = open_source(source, config)
    chosen = _first(stream(), wanted_chars)
    if not chosen:
        raise LowresError(f"replay_source {source!r} yielded no text")
    return named(chosen, name)


def interleave(texts: Sequence[TextExample], replayed: Sequence[TextExample]) -> list[TextExample]:
    """Return ``texts`` with ``replayed`` spread evenly among them (order within each kept)."""
    if not replayed:
        return list(texts)
    if not texts:
        return list(replayed)
    merged: list[TextExample] = []
    step = len(texts) / len(replayed)
    next_at = step / 2
    replay_iter = iter(replayed)
    for index, text in enumerate(texts):
        while index >= next_at:
            merged.append(next(replay_iter))
            next_at += step
        merged.append(text)
    merged.extend(replay_iter)
    return merged
