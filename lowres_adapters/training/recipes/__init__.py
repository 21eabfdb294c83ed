"""Recipes by name, imported only when used.

Each entry is ``"module:ClassName"``; the class is a :class:`~.base.Recipe` subclass. CLI
spellings with hyphens (``prompt-align``, ``cpt-sft``) map to the underscore names.
"""

from __future__ import annotations

import importlib

from lowres_adapters.errors import LowresError

RECIPES = {
    "language": "lowres_adapters.training.recipes.language:LanguageRecipe",
    "graph": "lowres_adapters.training.recipes.graph:GraphRecipe",
    "cpt": "lowres_adapters.training.recipes.cpt_sft:CptRecipe",
    "sft": "lowres_adapters.training.recipes.cpt_sft:SftRecipe",
    "cpt_sft": "lowres_adapters.training.recipes.cpt_sft:CptSftRecipe",
    "prompt_align": "lowres_adapters.training.recipes.prompt_align:PromptAlignRecipe",
    "task": "lowres_adapters.training.recipes.task:TaskRecipe",
}


def canonical_recipe_name(name: str) -> str:
    """Return the registry spelling of a recipe name (``prompt-align`` -> ``prompt_align``)."""
    return name.strip().replace("-", "_")


def _load(name: str) -> type | None:
    module_name, class_name = RECIPES[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:  # that recipe is not part of this build
            return None
        raise
    return getattr(module, class_name)


def recipe_names() -> list[str]:
    """Return the names of the recipes available in this installation."""
    return [name for name in RECIPES if _load(name) is not None]


def get_recipe(name: str):  # -> Recipe (imported lazily)
    """Return a new instance of the recipe called ``name``.

    Raises:
        LowresError: For an unknown name, listing the known ones.
    """
    key = canonical_recipe_name(name)
    recipe_class = _load(key) if key in RECIPES else None
    if recipe_class is None:
        raise LowresError(f"unknown recipe {name!r}; available: {', '.join(recipe_names())}")
    return recipe_class()
