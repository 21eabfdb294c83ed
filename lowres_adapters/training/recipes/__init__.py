"""Recipes by name, imported only when used.

The built-in table :data:`RECIPES` registers through the ``register_recipes`` hook like any
plugin's recipes. Each entry is ``"module:ClassName"``; the class is a :class:`~.base.Recipe`
subclass. CLI spellings with hyphens (``prompt-align``, ``cpt-sft``) map to the underscore names.
"""

from __future__ import annotations

from typing import Callable

from lowres_adapters.errors import LowresError
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.registry import get_registry, registered_target
from lowres_adapters.specs import RecipeType

RECIPES = {
    "language": "lowres_adapters.training.recipes.language:LanguageRecipe",
    "graph": "lowres_adapters.training.recipes.graph:GraphRecipe",
    "cpt": "lowres_adapters.training.recipes.cpt_sft:CptRecipe",
    "sft": "lowres_adapters.training.recipes.cpt_sft:SftRecipe",
    "cpt_sft": "lowres_adapters.training.recipes.cpt_sft:CptSftRecipe",
    "prompt_align": "lowres_adapters.training.recipes.prompt_align:PromptAlignRecipe",
    "task": "lowres_adapters.training.recipes.task:TaskRecipe",
}

DESCRIPTIONS = {
    "language": "Language adaptation: an adapter trained on monolingual text (CLM or MLM)",
    "graph": "Knowledge injection: an adapter trained on sentences verbalised from a knowledge graph",
    "cpt": "Continued pre-training stage on monolingual text",
    "sft": "Supervised fine-tuning stage on instruction or translation pairs",
    "cpt_sft": "Continued pre-training then supervised fine-tuning, one adapter",
    "prompt_align": "Soft prompt and/or adapter with a frozen-teacher alignment loss on parallel text",
    "task": "A task adapter and head stacked on a frozen language adapter (MAD-X)",
}


@hookimpl
def register_recipes(register: Callable[[RecipeType], None]) -> None:
    """Register the built-in recipes, each imported only when it runs."""
    for name, target in RECIPES.items():
        register(RecipeType(name=name, recipe_class=target, description=DESCRIPTIONS.get(name, name)))


def canonical_recipe_name(name: str) -> str:
    """Return the registry spelling of a recipe name (``prompt-align`` -> ``prompt_align``)."""
    return name.strip().replace("-", "_")


def _load(name: str) -> type | None:
    return registered_target("recipes", name, RECIPES, "recipe_class")


def recipe_names() -> list[str]:
    """Return the names of the recipes available in this installation (built-in and plugins')."""
    names = set(get_registry().names("recipes")) | set(RECIPES)
    return [name for name in sorted(names) if _load(name) is not None]


def get_recipe(name: str):  # -> Recipe (imported lazily)
    """Return a new instance of the recipe called ``name``.

    Raises:
        LowresError: For an unknown name, listing the known ones.
    """
    key = canonical_recipe_name(name)
    recipe_class = _load(key)
    if recipe_class is None:
        raise LowresError(f"unknown recipe {name!r}; available: {', '.join(recipe_names())}")
    return recipe_class()
