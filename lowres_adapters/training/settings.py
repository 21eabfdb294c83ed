"""Run settings: frozen, documented, validated; loaded from TOML or YAML and overridden on the CLI.

Precedence, lowest first: the loop's own defaults (:class:`LoopSettings`), the recipe's defaults
for the model's objective (``Recipe.loop_defaults``), the config file, the command line.

A config file mirrors :class:`RunSettings`::

    language = "nya"
    recipe = "language"
    adapter = "lora"

    [adapter_config]      # fields of the adapter type's config class
    r = 16

    [loop]                # fields of LoopSettings (training/loop_settings.py, by concern)
    max_steps = 40
    lr = 1e-3

    [data]                # fields of DataSettings
    eval_examples = 300

    [recipe_options]      # fields of the recipe's options class
    mix_share = 0.2
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.specs import LANGUAGE_CODE_PATTERN, NAME_PATTERN
from lowres_adapters.training.loop_settings import SCHEDULES, LoopSettings
from lowres_adapters.training.typed_settings import SettingsError, check_language, typed_values

__all__ = ["SCHEDULES", "DataSettings", "LoopSettings", "RunSettings", "SettingsError", "build_run_settings",
           "merge_settings", "parse_assignment", "read_config_file", "resolve_loop_settings", "typed_values"]

@dataclass(frozen=True)
class DataSettings:
    """Where the training and evaluation data come from.

    Files override the language pack's splits; a language without a pack needs ``text``
    (or ``pairs``) and an evaluation file.

    Attributes:
        text: Training text file (one example per line; ``.gz`` allowed), or a ``datasets`` dataset as
            ``hf:PATH_OR_NAME[:SPLIT[:COLUMN]]`` (:mod:`~lowres_adapters.data.dataset_text`).
        eval_text: Held-out text file for bits per character (replaces the pack's ``text["test"]``).
        pairs: Training pairs file (TSV: source<TAB>target).
        eval_pairs: Held-out pairs file.
        source_lang: ISO 639-3 code of the pairs' source column (for user files).
        max_train_examples: Use at most this many training examples (the first N); None for all.
        eval_examples: Held-out examples scored for bits per character before and after (the
            first N of the test split, as the Chichewa anchor scored the first 300 NT verses);
            None scores the whole split.
    """

    text: str | None = None
    eval_text: str | None = None
    pairs: str | None = None
    eval_pairs: str | None = None
    source_lang: str = "eng"
    max_train_examples: int | None = None
    eval_examples: int | None = 300

    def __post_init__(self) -> None:
        _check(self.max_train_examples is None or self.max_train_examples >= 1, "max_train_examples must be >= 1")
        _check(self.eval_examples is None or self.eval_examples >= 1,
               "eval_examples must be >= 1 (omit it to score the whole split)")
        _check(bool(LANGUAGE_CODE_PATTERN.match(self.source_lang)),
               f"source_lang {self.source_lang!r} must be an ISO 639-3 code")

    def has_files(self) -> bool:
        """Return True when any user file is given."""
        return any((self.text, self.eval_text, self.pairs, self.eval_pairs))


@dataclass(frozen=True)
class RunSettings:
    """Everything one ``lowres adapt`` run needs.

    Attributes:
        language: ISO 639-3 code of the target language.
        recipe: Recipe name; empty uses the language pack's default (else ``"language"``).
        model: Base model id or folder; empty uses the pack's default model.
        adapter: Registered adapter type name; empty uses the recipe's default (``lora``;
            ``prompt_tuning`` for ``prompt_align``; ``seq_bn`` for ``task``).
        adapter_config: Overrides for fields of the adapter type's config class.
        adapter_name: Name of the adapter inside the model; empty uses the language code.
        output: Run folder; empty uses ``runs/<language>-<recipe>-<adapter>``.
        train_also: Glob patterns of base-model parameter names trained as well as the adapter
            (the freezing strategy; empty = only the adapter trains). Saved under ``lowres.base.``.
        resume: Continue from the latest checkpoint in ``output`` (with the same settings).
        overwrite: Replace a finished run in ``output`` (refused otherwise).
        publish: Hub repo ``owner/name`` to publish the run folder to when done.
        extend_vocab: Add up to this many tokens trained on the training text (vocabulary
            extension, see docs/transfer.md); only their rows train besides the adapter. 0 keeps
            the base vocabulary.
        loop: Overrides for :class:`LoopSettings` fields (recipe defaults fill the rest).
        data: Data files and sizes.
        recipe_options: Overrides for fields of the recipe's options class.
    """

    language: str
    recipe: str = ""
    model: str = ""
    adapter: str = ""
    adapter_config: Mapping[str, Any] = field(default_factory=dict)
    adapter_name: str = ""
    output: str = ""
    train_also: tuple[str, ...] = ()
    resume: bool = False
    overwrite: bool = False
    publish: str | None = None
    extend_vocab: int = 0
    loop: Mapping[str, Any] = field(default_factory=dict)
    data: DataSettings = field(default_factory=DataSettings)
    recipe_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(isinstance(self.language, str) and bool(LANGUAGE_CODE_PATTERN.match(self.language)),
               f"language {self.language!r} must be an ISO 639-3 code (3 lowercase letters)")
        _check(self.recipe == "" or bool(NAME_PATTERN.match(self.recipe)), f"recipe {self.recipe!r} is not a valid name")
        _check(self.adapter == "" or bool(NAME_PATTERN.match(self.adapter)),
               f"adapter {self.adapter!r} is not a valid name")
        _check(self.adapter_name == "" or bool(NAME_PATTERN.match(self.adapter_name)),
               f"adapter_name {self.adapter_name!r} must match {NAME_PATTERN.pattern}")
        _check(self.publish is None or self.publish.count("/") == 1, "publish must be OWNER/NAME")
        _check(isinstance(self.extend_vocab, int) and self.extend_vocab >= 0, "extend_vocab must be >= 0")
        resolve_loop_settings({}, self.loop, where="loop")  # reject unknown keys and bad values now

    def to_json(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict (what ``run_config.json`` records)."""
        values = dataclasses.asdict(self)
        values["train_also"] = list(self.train_also)
        values["adapter_config"] = dict(self.adapter_config)
        values["loop"] = dict(self.loop)
        values["recipe_options"] = dict(self.recipe_options)
        return values


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


# --- building settings ------------------------------------------------------------------------

_SECTIONS = {"adapter_config", "loop", "data", "recipe_options"}


def resolve_loop_settings(recipe_defaults: Mapping[str, Any], overrides: Mapping[str, Any],
                          where: str = "loop") -> LoopSettings:
    """Return :class:`LoopSettings` from the recipe's defaults with the user's overrides on top.

    Raises:
        SettingsError: On an unknown key or an invalid value (one line naming ``where``).
    """
    values = {**dict(recipe_defaults), **dict(overrides)}
    if values.get("precision") in ("fp32", "bf16"):  # an explicit precision sets the CPU speed switch too
        values["bf16"] = values["precision"] == "bf16"
    try:
        return config_from_dict(LoopSettings, typed_values(LoopSettings, values, where, prefix="loop."), where=where)
    except LowresError as error:
        raise SettingsError(str(error)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) settings file into a dict.

    Raises:
        SettingsError: When the file is missing, unparsable or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"{path}: config file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            values = tomllib.loads(path.read_text("utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml  # lazy: ~30 ms at every CLI start otherwise; only YAML config files need it

            values = yaml.safe_load(path.read_text("utf-8")) or {}
        else:
            raise SettingsError(f"{path}: config files must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path}: invalid TOML ({error})") from None
    except Exception as error:  # noqa: BLE001 - yaml's error classes, without importing yaml eagerly
        if isinstance(error, SettingsError):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SettingsError(f"{path}: invalid YAML ({first})") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    return values


def merge_settings(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` on top; the sections merge key by key."""
    merged = {key: (dict(value) if key in _SECTIONS and isinstance(value, Mapping) else value)
              for key, value in base.items()}
    for key, value in overrides.items():
        if key in _SECTIONS and isinstance(value, Mapping):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def parse_assignment(text: str) -> dict[str, Any]:
    """Turn ``"loop.warmup_ratio=0.1"`` (the CLI's ``--set``) into ``{"loop": {"warmup_ratio": 0.1}}``.

    The value is parsed as TOML when it can be (numbers, booleans, ``[1, 2]``), else kept as text.
    """
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise SettingsError(f"--set {text!r}: expected KEY=VALUE, e.g. loop.warmup_ratio=0.1")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    section, dot, name = key.partition(".")
    if dot:
        if section not in _SECTIONS:
            raise SettingsError(f"--set {key}: unknown section {section!r}; expected one of {', '.join(sorted(_SECTIONS))}")
        return {section: {name: value}}
    return {key: value}


def build_run_settings(values: Mapping[str, Any], where: str = "settings") -> RunSettings:
    """Build :class:`RunSettings` from a merged dict (config file + CLI), validating every key.

    Raises:
        SettingsError: On an unknown key or an invalid value (one line naming ``where``).
    """
    values = dict(values)
    top_fields = {f.name for f in dataclasses.fields(RunSettings)}
    unknown = sorted(set(values) - top_fields)
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}; expected some of: "
                            f"{', '.join(sorted(top_fields))}")
    for section in _SECTIONS:
        if section in values and not isinstance(values[section], Mapping):
            raise SettingsError(f"{where}: [{section}] must be a table of settings")
    if "language" not in values:
        raise SettingsError(f"{where}: language is required (an ISO 639-3 code such as nya)")
    check_language(values["language"], where)
    if isinstance(values.get("train_also"), str):
        values["train_also"] = (values["train_also"],)
    top = {key: value for key, value in values.items() if key not in _SECTIONS}
    values.update(typed_values(RunSettings, top, where))
    if "loop" in values:
        values["loop"] = typed_values(LoopSettings, values["loop"], where, prefix="loop.")
    try:
        data = typed_values(DataSettings, dict(values.get("data", {})), where, prefix="data.")
        values["data"] = config_from_dict(DataSettings, data, where=f"{where} [data]")
    except LowresError as error:
        raise SettingsError(str(error)) from None
    try:
        return RunSettings(**values)
    except LowresError as error:
        raise SettingsError(f"{where}: {error}") from None
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{where}: {error}") from None


def loop_settings_to_json(settings: LoopSettings) -> dict[str, Any]:
    """Return the resolved loop settings as a JSON-ready dict."""
    return config_to_dict(settings)
