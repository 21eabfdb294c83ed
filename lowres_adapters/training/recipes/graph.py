"""The ``graph`` recipe: a language adapter trained on knowledge-graph sentences.

Edges from a registered data source (graph plugins provide them: ``recipe_options.source=NAME``,
``lowres list sources``) whose start node is in the target language become template sentences
(``"{start} {predicate} {end}."``, :mod:`lowres_adapters.data.templates`); a source that yields
text (e.g. ``graph_sentences``) is used as it is. Sentences split 80/10/10 by a fixed
seed on their edge id (arXiv 2502.10140); the adapter trains on the 80% with the model's own
objective, like the ``language`` recipe, and is scored on the pack's held-out text (free text: does
the graph adapter cost the language anything?) and on the first ``eval_sentences`` of the graph's
10% test split (``graph_bits_per_char``: did it learn the graph?).

Templates: ``recipe_options.templates`` is ``"eng"``, a JSON file, or a file shipped inside a
package, ``"package:path.json"`` (``lowres-kg-cldr`` ships ``lowres_kg_cldr:templates/zho.json`` and
``lowres_kg_cldr:templates/rus.json``); see :mod:`lowres_adapters.data.templates`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable

from lowres_adapters.configs import config_from_dict
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

GRAPH_SPLIT = {"train": 0.8, "validation": 0.1, "test": 0.1}
DECODER_LR = 3e-3
"""The ``language`` recipe's 1e-2 diverged on short graph sentences (CLDR Chinese, 1 seed of 2:
training loss 3.1 -> 7.3 from step 18); 3e-3 was stable in both seeds (docs/training.md, "Graph adapters")."""
GRAPH_DECODER_LOOP = {"lr": DECODER_LR, "batch_size": 8, "max_steps": 40}
"""Decoder graph runs: 40 steps of 8 rows at lr 3e-3 (the graph table in docs/training.md was measured so)."""


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
    """

    source: str = ""
    source_config: dict[str, Any] = field(default_factory=dict)
    templates: str = "eng"
    max_sentences: int | None = None
    eval_sentences: int = 200
    split_seed: int = 0
    mask_probability: float = 0.15

    def __post_init__(self) -> None:
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ValueError("max_sentences must be >= 1")
        if self.eval_sentences < 0:
            raise ValueError("eval_sentences must be >= 0")


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

    def job(self, context: RecipeContext) -> TrainingJob:
        """Return the masked/causal LM job on the graph sentences."""
        splits = context.state["graph_sentences"]
        return text_job(context, splits["train"], splits["validation"], self.name, context.options.mask_probability)

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
        return figures

    def datasets(self, context: RecipeContext) -> list[str]:
        """Return the graph source's name."""
        return [context.options.source]
