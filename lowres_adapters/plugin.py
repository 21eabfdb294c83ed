"""The one module plugin authors import: ``from lowres_adapters.plugin import ...``.

Everything a plugin package needs is here; every other module of ``lowres_adapters`` is internal
and may move between releases. docs/plugins.md lists each name with its signature.

- Registering: :data:`hookimpl` and the spec classes (:class:`AdapterType`, :class:`AlignmentLoss`,
  :class:`DataSource`, :class:`LanguagePack` with :class:`SourceInfo` and :class:`PublishedAdapter`,
  :class:`RecipeType`, :class:`TaskKind`, :class:`CommandSpec`).
- Examples a source or pack yields: :class:`TextExample`, :class:`PairExample`, :class:`Edge`,
  :class:`LabeledExample`, :class:`TaskData`, :class:`PackData`, :class:`Provenance`.
- Adapter handles: :class:`AttachedAdapter` (the contract), :class:`ParameterSetAdapter` (a base
  class doing most of it), :func:`parameter_names`, :func:`added_parameter_names`,
  :class:`CannotDisable`.
- Pack helpers: cache files (:func:`write_jsonl`, :func:`read_jsonl`, :func:`write_json`,
  :func:`sha256_file`, :func:`atomic_directory`, :func:`atomic_write`, :func:`iter_lines`), provenance (:func:`record_provenance`), splits
  (:data:`SPLITS`, :func:`split_of`, :func:`drop_leaked`), normalisation (:func:`normalize_text`,
  :func:`near_duplicate_key`, :func:`script_fraction`, :func:`to_iso639_3`), data routes
  (:func:`pip_package_dir`, :func:`distribution_version`, :func:`apt_download`, :func:`deb_extract`,
  :func:`npm_pack`, :func:`extract_tarball`), :func:`pack_version` and :func:`cache_dir` (the
  library's cache folder, for data shared by several packs).
- Knowledge graphs: :func:`load_templates` (:class:`RelationTemplates`) and :func:`verbalise_edges`
  turn edges into sentences.
- Alignment: :class:`AlignmentInputs` (what a loss receives) and :func:`build_alignment_loss`.
- Recipes: :class:`Recipe`, :class:`RecipeContext`, :class:`TrainingJob`, :func:`attach_adapter`,
  :func:`score_held_out`.
- Errors: :class:`LowresError`, :class:`InputError`.
- Testing kits: :func:`check_adapter_type`, :func:`check_language_pack`, :func:`check_alignment_loss`,
  :func:`check_data_source` (each raises :class:`ConformanceError`, returns a
  :class:`ConformanceReport`), :func:`tiny_model`, :func:`base_shape_config`.

Names that need torch (alignment builder, recipes, kits) are imported on first use, so importing
this module from a plugin's registration code stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from lowres_adapters.data.cache import read_jsonl, record_provenance, sha256_file, write_json, write_jsonl
from lowres_adapters.data.examples import (
    Edge,
    LabeledExample,
    PackData,
    PairExample,
    Provenance,
    TaskData,
    TextExample,
)
from lowres_adapters.data.files import iter_lines, normalize_text
from lowres_adapters.data.graphs import verbalise_edges
from lowres_adapters.data.languages import script_fraction, to_iso639_3
from lowres_adapters.data.packs import (
    apt_download,
    deb_extract,
    distribution_version,
    extract_tarball,
    npm_pack,
    pack_version,
    pip_package_dir,
)
from lowres_adapters.data.splits import SPLITS, drop_leaked, split_of
from lowres_adapters.data.templates import RelationTemplates, load_templates
from lowres_adapters.errors import InputError, LowresError
from lowres_adapters.handles import CannotDisable, ParameterSetAdapter, added_parameter_names, parameter_names
from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.io import atomic_directory, atomic_write
from lowres_adapters.paths import cache_dir
from lowres_adapters.specs import (
    AdapterType,
    AlignmentInputs,
    AlignmentLoss,
    AttachedAdapter,
    CommandSpec,
    DataSource,
    LanguagePack,
    PublishedAdapter,
    RecipeType,
    SourceInfo,
    TaskKind,
)

_LAZY = {
    "near_duplicate_key": "lowres_adapters.data.dedup",
    "build_alignment_loss": "lowres_adapters.training.alignment",
    "Recipe": "lowres_adapters.training.recipes.base",
    "RecipeContext": "lowres_adapters.training.recipes.base",
    "attach_adapter": "lowres_adapters.training.recipes.base",
    "score_held_out": "lowres_adapters.training.recipes.base",
    "TrainingJob": "lowres_adapters.training.loop",
    "check_adapter_type": "lowres_adapters.testing.conformance",
    "check_language_pack": "lowres_adapters.testing.pack_kit",
    "check_alignment_loss": "lowres_adapters.testing.loss_kit",
    "check_data_source": "lowres_adapters.testing.source_kit",
    "ConformanceError": "lowres_adapters.testing.conformance",
    "ConformanceReport": "lowres_adapters.testing.conformance",
    "tiny_model": "lowres_adapters.testing.tiny",
    "base_shape_config": "lowres_adapters.testing.tiny",
}
"""Names imported on first use (they import numpy or torch), mapped to their module."""

__all__ = sorted([
    "AdapterType", "AlignmentInputs", "AlignmentLoss", "AttachedAdapter", "CannotDisable", "CommandSpec",
    "DataSource", "Edge", "InputError", "LabeledExample", "LanguagePack", "LowresError", "PackData",
    "PairExample", "ParameterSetAdapter", "Provenance", "PublishedAdapter", "RecipeType", "RelationTemplates",
    "SPLITS", "SourceInfo", "TaskData", "TaskKind", "TextExample", "added_parameter_names", "apt_download",
    "atomic_directory", "atomic_write", "cache_dir", "deb_extract", "distribution_version", "drop_leaked",
    "extract_tarball", "hookimpl", "iter_lines", "load_templates", "normalize_text", "npm_pack",
    "pack_version", "parameter_names", "pip_package_dir", "read_jsonl", "record_provenance",
    "script_fraction", "sha256_file", "split_of", "to_iso639_3", "verbalise_edges", "write_json",
    "write_jsonl", *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lowres_adapters.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
