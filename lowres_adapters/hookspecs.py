"""The hooks a ``lowres_adapters`` plugin may implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` and named after one of the
hooks below. It is found through the ``lowres_adapters`` entry-point group::

    # pyproject.toml of the plugin's own distribution
    [project.entry-points.lowres_adapters]
    my_plugin = "my_package.plugin"

Every ``register_*`` hook but one receives one argument, ``register``: call it once per thing the
plugin provides, with a frozen spec object from :mod:`lowres_adapters.plugin`. The spec is
validated at the call, so an error names the plugin that made it. ``register_commands`` receives
``cli``, a table of ``lowres`` subcommands (as the ``llm`` tool does). Built-in plugins register
through these same hooks, first: their names are reserved, and a third-party spec reusing one is
rejected alone (the plugin's other specs stay).
"""

from __future__ import annotations

from typing import Callable

import pluggy

from lowres_adapters.specs import AdapterType, AlignmentLoss, DataSource, LanguagePack, RecipeType, TaskKind

PROJECT_NAME = "lowres_adapters"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_adapter_types(register: Callable[[AdapterType], None]) -> None:
    """Register adapter architectures that attach to a transformers model.

    Implemented by: plugins shipping a parameter-efficient method (bottleneck, LoRA, prompts, ...).

    Args:
        register: Call with one :class:`~lowres_adapters.specs.AdapterType` per method.

    Example::

        @hookimpl
        def register_adapter_types(register):
            register(AdapterType(name="my_lora", config_class=MyLoraConfig,
                                 attach=attach_my_lora, description="LoRA with my twist"))
    """


@hookspec
def register_alignment_losses(register: Callable[[AlignmentLoss], None]) -> None:
    """Register losses that pull the adapted model's representations towards a reference.

    Implemented by: plugins shipping a cross-lingual alignment objective (MSE, cosine, KL, InfoNCE, ...).

    Args:
        register: Call with one :class:`~lowres_adapters.specs.AlignmentLoss` per loss.

    Example::

        @hookimpl
        def register_alignment_losses(register):
            register(AlignmentLoss(name="l1", config_class=L1Config, build=build_l1,
                                   description="L1 distance of pooled hidden states"))
    """


@hookspec
def register_data_sources(register: Callable[[DataSource], None]) -> None:
    """Register readers that turn files or remote corpora into training examples.

    Implemented by: plugins reading a corpus format or a knowledge graph.

    Args:
        register: Call with one :class:`~lowres_adapters.specs.DataSource` per reader.

    Example::

        @hookimpl
        def register_data_sources(register):
            register(DataSource(name="my_graph", config_class=MyGraphConfig,
                                open=read_my_graph, yields="text",
                                description="My graph verbalised to sentences"))
    """


@hookspec
def register_language_packs(register: Callable[[LanguagePack], None]) -> None:
    """Register a language: where its real data comes from, its honest splits and defaults.

    Implemented by: ``lowres-lang-<iso639-3>`` packages.

    Args:
        register: Call with one :class:`~lowres_adapters.specs.LanguagePack` per language.

    Example::

        @hookimpl
        def register_language_packs(register):
            register(LanguagePack(code="xyz", script="Latn", name="Xyz", fetch=fetch, load=load, ...))
    """


@hookspec
def register_recipes(register: Callable[[RecipeType], None]) -> None:
    """Register training recipes (``lowres adapt LANG --recipe NAME``).

    Args:
        register: Call with one :class:`~lowres_adapters.specs.RecipeType` per recipe.

    Example::

        @hookimpl
        def register_recipes(register):
            register(RecipeType(name="my_recipe", recipe_class=MyRecipe, description="..."))
    """


@hookspec
def register_task_kinds(register: Callable[[TaskKind], None]) -> None:
    """Register kinds of task head (sequence classification, tagging, span extraction, ...).

    Args:
        register: Call with one :class:`~lowres_adapters.specs.TaskKind` per kind.
    """


@hookspec
def register_commands(cli: object) -> None:
    """Add ``lowres`` subcommands.

    Args:
        cli: A command table: ``@cli.command()`` decorates a click command as in click,
            ``cli.add_command(command, name=None)`` adds a click command, and
            ``cli.add_lazy(name, "module:attribute", description="")`` adds one imported on first use.

    Example::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """
