"""The ``graph`` recipe: a language adapter trained on knowledge-graph sentences.

Edges from a registered data source (graph plugins provide them: ``recipe_options.source=NAME``,
``lowres list sources``) whose start node is in the target language become template sentences
(``"{start} {predicate} {end}."``, :mod:`lowres_adapters.data.templates`); a source that yields
text (e.g. ``graph_sentences``) is used as it is. Sentences split 80/10/10 by a fixed
seed on their edge id (arXiv 2502.10140); the adapter trains on the 80% with the model's own
objective, like the ``language`` recipe, and is scored on the pack's held-out text (free text: does
the graph adapter cost the language anything?) and on the first ``eval_sentences`` of the graph's
10% test split (``graph_bits_per_char``: did it learn the graph?).

Free text mixed in. Trained on template sentences alone, the adapter unlearns ordinary text (CLDR
Chinese: free-text bits/char +7.2%). ``text_share`` of the training characters is therefore the
target language's own free text, read from ``text_source`` (default: the run's training text, the
pack's train split or ``--text FILE``), taken evenly across it and spread evenly among the graph
sentences (:mod:`lowres_adapters.training.replay`'s helpers, as the ``cpt`` replay mix); a text
identical to a held-out one is never mixed in. Without free text the run says so in one line and
trains on the graph sentences alone. What the share costs and buys is in docs/training.md.

Templates: ``recipe_options.templates`` is ``"eng"``, a JSON file, or a file shipped inside a
package, ``"package:path.json"`` (``lowres-kg-cldr`` ships ``lowres_kg_cldr:templates/zho.json`` and
``lowres_kg_cldr:templates/rus.json``); see :mod:`lowres_adapters.data.templates`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.data.examples import TextExample
from lowres_adapters.data.graphs import verbalise_edges
from lowres_adapters.data.languages import to_iso639_3
from lowres_adapters.data.splits import split_of
from lowres_adapters.data.templates import load_templates
from lowres_adapters.errors import LowresError
from lowres_adapters.registry import get_registry
from lowres_adapters.training.loop import TrainingJob
from lowres_adapters.training.recipes.base import Recipe, RecipeContext
from lowres_adapters.training.recipes.language import LanguageRecipe, text_job
from lowres_adapters.training.replay import (MAX_REPLAY_TEXTS, evenly, interleave, named, open_source,
                                             replay_chars_wanted)

GRAPH_SPLIT = {"train": 0.8, "validation": 0.1, "test": 0.1}
DECODER_LR = 3e-3
"""The ``language`` recipe's 1e-2 diverged on short graph sentences (CLDR Chinese, 1 seed of 2:
training loss 3.1 -> 7.3 from step 18); 3e-3 was stable in both seeds (docs/training.md, "Graph adapters")."""
GRAPH_DECODER_LOOP = {"lr": DECODER_LR, "batch_size": 8, "max_steps": 40}
"""Decoder graph runs: 40 steps of 8 rows at lr 3e-3 (the graph table in docs/training.md was measured so)."""
TEXT_SHARE = 0.5
"""Default share of the training characters that is free text. CLDR Chinese, 3 seeds (docs/training.md,
"Graph adapters"): free text -22.1% bits/char (graph-only +0.7%, one seed +6.4%), graph text -45.9%
(graph-only -43.3%); 0.25 gave -14.0% / -44.7%, 0.75 -24.1% / -41.3%."""
RUN_TEXT = ""
"""``text_source`` naming the run's own training text (the pack's train split or ``--text FILE``)."""
TEXT_OPTION_NAMES = ("text_share", "text_source", "text_config")

logger = logging.getLogger("lowres_adapters.training")


@dataclass(frozen=True)
class GraphOptions:
    """Options of the ``graph`` recipe.

    Attributes:
        source: Registered data source yielding ``edges`` (or ``text`` sentences); required, as
            graphs come from plugins.
        source_config: Settings of that source (its config class's fields). A ``languages`` or
            ``locales`` field left empty is set to the target language.
        templates: ``"eng"`` (the 33 English predicates of arXiv 2502.10140), a templates JSON
            file, or ``"package:path.json"`` (a file shipped inside an installed package).
        max_sentences: Use at most this many training sentences (the first N); None for all.
        eval_sentences: Held-out graph sentences (the first N of the 10% test split) scored for
            ``graph_bits_per_char``; 0 skips them.
        split_seed: Seed of the 80/10/10 split.
        mask_probability: Share of tokens predicted in masked LM (encoders only).
        text_share: Share of the training characters that is the target language's free text, mixed
            evenly among the graph sentences so the adapter keeps ordinary text. Default 0.5
            (``TEXT_SHARE``): on CLDR Chinese it kept free text within the +2% goal in every seed
            (-22.1%) at no graph-text price (-45.9% vs -43.3% graph-only); 0.75 cost graph text
            (docs/training.md, "Graph adapters"). 0 trains on graph sentences only.
        text_source: Where the free text comes from: ``""`` (default) the run's training text (the
            pack's train split, or ``--text FILE``/``hf:...``); else a registered data source
            yielding text (``lowres list sources``) or a text file or folder. Use a train split: a
            text identical to a held-out text is dropped, nothing else is checked.
        text_config: Settings of that data source (for a file or folder: of the ``text`` source,
            ``lang`` defaulting to the target language).
    """

    source: str = ""
    source_config: dict[str, Any] = field(default_factory=dict)
    templates: str = "eng"
    max_sentences: int | None = None
    eval_sentences: int = 200
    split_seed: int = 0
    mask_probability: float = 0.15
    text_share: float = TEXT_SHARE
    text_source: str = RUN_TEXT
    text_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ValueError("max_sentences must be >= 1")
        if self.eval_sentences < 0:
            raise ValueError("eval_sentences must be >= 0")
        if not 0 <= self.text_share < 1:
            raise ValueError("text_share must be in [0, 1)")


def _source_config(spec: Any, values: dict[str, Any], language: str) -> Any:
    values = dict(values)
    names = {f.name for f in dataclasses.fields(spec.config_class)}
    for key in ("languages", "locales"):
        if key in names and not values.get(key):
            values[key] = [language]
    return config_from_dict(spec.config_class, values, where=f"recipe_options.source_config for {spec.name}")


def graph_sentences(options: GraphOptions, language: str) -> list[TextExample]:
    """Return the target language's sentences from the options' graph source."""
    if not options.source:
        raise LowresError("the graph recipe needs a graph: recipe_options.source=NAME, a data source that "
                          "yields edges or text (see 'lowres list sources')")
    spec = get_registry().data_source(options.source)
    items: Iterable[Any] = spec.open(_source_config(spec, options.source_config, language))
    if spec.yields == "edges":
        sentences = verbalise_edges(items, load_templates(options.templates), (language,))
    elif spec.yields == "text":
        sentences = (example for example in items if to_iso639_3(example.lang) == language)
    else:
        raise LowresError(f"data source {options.source!r} yields {spec.yields}; the graph recipe needs edges or text")
    return list(sentences)


def free_texts(options: GraphOptions, data: Any, language: str, wanted_chars: int,
               limit: int | None = None) -> tuple[list[TextExample], str]:
    """Return ``(texts, where)``: free texts of ``language`` holding about ``wanted_chars`` characters
    taken evenly across ``options.text_source`` (fewer when it is smaller; none when it has no text).

    Args:
        options: The recipe's options (``text_source``, ``text_config``).
        data: The run's data: its ``text["train"]`` for the default source; a text identical to one
            of its ``text["test"]`` or ``text["validation"]`` texts is never returned.
        language: The target language (``lang`` of a file's texts unless ``text_config`` sets it).
        wanted_chars: Characters wanted; 0 returns nothing.
        limit: Read at most the first ``limit`` texts of the run's training text (``max_train_examples``);
            any source is read up to its first ``MAX_REPLAY_TEXTS`` texts (two passes: one counts).

    Raises:
        LowresError: One line, for a ``text_source`` that is neither a text source nor a file or folder.
    """
    if wanted_chars <= 0:
        return [], ""
    held_out = {example.text for split in ("test", "validation") for example in data.text.get(split) or []}
    if options.text_source == RUN_TEXT:
        corpus = data.text.get("train")
        if not corpus:
            return [], "the run's training text"
        name = getattr(getattr(corpus, "provenance", None), "detail", "") or "the run's training text"
        opener: Callable[[], Iterator[TextExample]] = lambda: iter(corpus)
        first = min(limit, MAX_REPLAY_TEXTS) if limit is not None else MAX_REPLAY_TEXTS
    else:
        name, opener = open_source(options.text_source, options.text_config, option="text_source", lang=language,
                                   expected="'' (the run's training text), ")
        first = MAX_REPLAY_TEXTS

    def kept() -> Iterator[TextExample]:
        return (example for example in islice(opener(), first) if example.text and example.text not in held_out)

    total = sum(len(example.text) for example in kept())  # a first pass counts, so a stream is never held
    chosen = evenly(kept(), wanted_chars, total) if total else []
    return (chosen if options.text_source == RUN_TEXT else named(chosen, name)), name


class GraphRecipe(LanguageRecipe):
    """Train a language adapter on knowledge-graph sentences in the target language."""

    name = "graph"
    description = "language adapter on knowledge-graph sentences (ConceptNet, CLDR, ...)"
    options_class = GraphOptions
    needs = ()

    def loop_defaults(self, objective: Any) -> dict[str, Any]:
        """Return the language recipe's defaults; encoders train 25k steps on graphs (paper), decoders
        40 steps of 8 rows at lr 3e-3 (``GRAPH_DECODER_LOOP``)."""
        defaults = super().loop_defaults(objective)
        if objective.masked:
            defaults["max_steps"] = 25_000
        else:
            defaults.update(GRAPH_DECODER_LOOP)
        return defaults

    def adapter_defaults(self, context: RecipeContext) -> dict[str, Any]:
        """Return no defaults: graph adapters keep the adapter type's own (what docs/training.md measured)."""
        return {}

    def check_data(self, context: RecipeContext) -> None:
        """Check the held-out text and read the graph's sentences (kept for :meth:`job`)."""
        Recipe.check_data(self, context)

        splits: dict[str, list[TextExample]] = {name: [] for name in GRAPH_SPLIT}
        for sentence in graph_sentences(context.options, context.language):
            splits[split_of(sentence.id, GRAPH_SPLIT, context.options.split_seed)].append(sentence)
        if not splits["train"]:
            raise LowresError(f"graph source {context.options.source!r} has no sentences for {context.language}")
        if context.options.max_sentences is not None:
            splits["train"] = splits["train"][: context.options.max_sentences]
        context.state["graph_sentences"] = splits
        context.state["free_text"] = self.free_text(context)  # a bad text_source fails before any scoring

    def free_text(self, context: RecipeContext) -> list[TextExample]:
        """Return the free texts mixed into this run (``text_share`` of the training characters; none
        when the share is 0, or with a one-line note when there is no free text)."""
        options = context.options
        graph_chars = sum(len(sentence.text) for sentence in context.state["graph_sentences"]["train"])
        wanted = replay_chars_wanted(graph_chars, options.text_share)
        texts, where = free_texts(options, context.data, context.language, wanted,
                                  context.settings.data.max_train_examples)
        got = sum(len(example.text) for example in texts)
        context.state["free_text_mix"] = {"texts": len(texts), "chars": got, "graph_chars": graph_chars,
                                          "share": got / (got + graph_chars) if got else 0.0,
                                          "source": options.text_source or "run text"}
        if wanted and not texts:
            logger.warning("note: graph: no free %s text in %s to mix in (text_share=%g); training on graph "
                           "sentences only (pass --text FILE or set recipe_options.text_source)",
                           context.language, where, options.text_share)
        elif texts:
            logger.info("graph: mixing %d free texts from %s in: %.1f%% of the training characters",
                        len(texts), where, 100 * got / (got + graph_chars))
        return texts

    def training_texts(self, context: RecipeContext) -> tuple[list[TextExample], list[TextExample]]:
        """Return ``(train, validation)``: the graph's training sentences with the free texts spread
        evenly among them, and the graph's validation sentences."""
        splits = context.state["graph_sentences"]
        if "free_text" not in context.state:
            context.state["free_text"] = self.free_text(context)
        return interleave(splits["train"], context.state["free_text"]), list(splits["validation"])

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the masked/causal LM job on the graph sentences (and the free texts mixed in)."""
        train, validation = self.training_texts(context)
        return text_job(context, train, validation, self.name, context.options.mask_probability)

    def base_score_options(self, context: RecipeContext) -> dict[str, Any]:
        """Return the options the base model's figures depend on: not the free-text mix (a sweep over
        ``text_share`` scores the base once)."""
        options = config_to_dict(context.options)
        return {key: value for key, value in options.items() if key not in TEXT_OPTION_NAMES}

    def evaluate(self, context: RecipeContext, model: Any) -> dict[str, Any]:
        """Return held-out free-text figures plus ``graph_bits_per_char`` on held-out graph sentences."""
        figures = super().evaluate(context, model)
        held = [s.text for s in context.state["graph_sentences"]["test"][: context.options.eval_sentences]]
        if held:
            show = context.loop.progress and context.process.is_main
            scores = context.objective.score(model, context.tokenizer, held, max_length=max(context.loop.max_length, 512),
                                             progress="scoring graph sentences" if show else None)
            figures.update({"graph_bits_per_char": scores.bits_per_char, "graph_eval_sentences": len(held),
                            "graph_sentences": {name: len(items) for name, items in
                                                context.state["graph_sentences"].items()}})
        if context.handle is not None and model is context.handle.model and "free_text_mix" in context.state:
            figures["graph_free_text"] = dict(context.state["free_text_mix"])  # what the adapter trained on
        return figures

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the graph source's name and the free text's corpora."""
        names = {example.provenance.source for example in context.state.get("free_text", [])}
        return [context.options.source] + sorted(name for name in names - {context.options.source}
                                                 if name and name != "unknown")
