"""The adapter artifact: what a run folder holds, what ``publish`` uploads and ``load`` reads.

A folder (run folder or Hub repo) holding:

- ``adapter.safetensors``: the adapter's tensors only (``AttachedAdapter.adapter_state_dict()``),
  plus new embedding rows under ``lowres.new_embedding_rows`` when the vocabulary was extended.
  Never the whole embedding matrix.
- ``lowres_adapter.json``: :class:`ArtifactMetadata` as JSON.
- ``tokenizer/``: tokenizer files, only when the vocabulary was extended.
- ``adapterhub/``: the upstream library's own files, when the adapter type writes them.
- ``README.md``: the model card; ``metrics.json``: base and adapted figures.

Nothing here unpickles: tensors are safetensors, metadata is JSON, the adapter type is resolved
through the registry by name.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lowres_adapters.configs import config_from_dict, config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_path, atomic_write_text
from lowres_adapters.native import NATIVE_DIR, name_the_base
from lowres_adapters.registry import Registry, get_registry
from lowres_adapters.version import __version__

FORMAT_VERSION = 1
METADATA_FILE = "lowres_adapter.json"
WEIGHTS_FILE = "adapter.safetensors"
METRICS_FILE = "metrics.json"
TOKENIZER_DIR = "tokenizer"
UNFINISHED_FILE = "run_in_progress.json"
"""Present while ``lowres adapt`` writes a run folder (removed last): such a folder is refused."""
BASE_TENSOR_PREFIX = "lowres.base."
"""Key prefix, in the weights file, of base-model parameters a run trained besides the adapter (``train_also``)."""
NEW_ROWS_KEY = "lowres.new_embedding_rows"
"""(added_tokens, hidden) rows appended to the input embeddings (and a tied output head)."""
NEW_OUTPUT_ROWS_KEY = "lowres.new_output_rows"
"""(added_tokens, hidden) rows appended to an untied output head."""


@dataclass
class ArtifactMetadata:
    """Everything ``lowres_adapter.json`` holds.

    Attributes:
        adapter_type: Registered adapter type name, e.g. ``"lora"``.
        adapter_name: Name the adapter had inside the model.
        adapter_config: The type's config as a dict.
        plugin: ``dist==version`` of the distribution providing the adapter type.
        base_model: Base model id (Hub id, or the embedded default's id).
        base_model_revision: Pinned revision of the base model (a Hub commit, or the embedded
            default's package and quantisation), if known.
        base_model_file: The exact weights the adapter was trained on: the embedded default's
            ``dist==version:NAME.gguf`` (dequantised), else the base folder's safetensors file names.
        base_model_fingerprint: ``{"algorithm", "tensors", "sha256"}``: a hash of a few named base
            tensors, checked by ``load`` (:mod:`lowres_adapters.base_identity`).
        objective: ``"clm"`` or ``"mlm"``.
        language: ISO 639-3 code.
        script: ISO 15924 script code.
        recipe: Recipe name, e.g. ``"language"``.
        recipe_settings: The resolved recipe settings.
        metrics: Figures on held-out data (``{"base": {...}, "adapted": {...}}``).
        datasets: Names of the corpora trained on.
        vocabulary: ``{"original_size": int, "added_tokens": int}`` when extended, else None.
        licence: Licence of the adapter weights (SPDX id).
        library_version: lowres-adapters version that wrote it.
        format_version: Version of this layout.
    """

    adapter_type: str
    adapter_name: str
    adapter_config: dict[str, Any]
    plugin: str | None
    base_model: str
    base_model_revision: str | None = None
    base_model_file: str | None = None
    base_model_fingerprint: dict[str, Any] | None = None
    objective: str = "clm"
    language: str = ""
    script: str = ""
    recipe: str = ""
    recipe_settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    vocabulary: dict[str, int] | None = None
    licence: str = "apache-2.0"
    library_version: str = __version__
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, values: Mapping[str, Any], where: str = METADATA_FILE) -> "ArtifactMetadata":
        """Parse metadata, with one clear line on a missing or unknown field."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise LowresError(f"{where}: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as error:
            raise LowresError(f"{where}: {error}") from None


def atomic_save_tensors(path: Path, tensors: Mapping[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors through a temporary file and a rename."""
    contiguous = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    with atomic_path(path) as temporary:
        save_file(contiguous, temporary, metadata=metadata)


def write_artifact(directory: Path, handle: Any, metadata: ArtifactMetadata,
                   extra_tensors: Mapping[str, Any] | None = None, tokenizer: Any = None,
                   native: bool = True) -> None:
    """Write adapter weights, metadata and (optionally) native files and tokenizer into ``directory``.

    Args:
        directory: The run folder.
        handle: The :class:`~lowres_adapters.specs.AttachedAdapter` to save.
        metadata: What goes into ``lowres_adapter.json``.
        extra_tensors: More tensors for ``adapter.safetensors`` (e.g. new embedding rows).
        tokenizer: An extended tokenizer to save under ``tokenizer/``.
        native: Also write the upstream library's own files under ``adapterhub/``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = dict(handle.adapter_state_dict())
    for key, value in (extra_tensors or {}).items():
        if key in tensors:
            raise ValueError(f"tensor key {key!r} is already used by the adapter")
        tensors[key] = value
    atomic_save_tensors(directory / WEIGHTS_FILE, tensors, metadata={"format": "pt", "lowres": str(FORMAT_VERSION)})
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    if native:
        native_dir = directory / NATIVE_DIR
        written = handle.save_native(native_dir)
        if not written and native_dir.exists() and not any(native_dir.iterdir()):
            native_dir.rmdir()
        name_the_base(native_dir, metadata)
    atomic_write_text(directory / METADATA_FILE, json.dumps(metadata.to_json(), indent=2, sort_keys=True) + "\n")


def read_metadata(directory: Path) -> ArtifactMetadata:
    """Read ``lowres_adapter.json`` from an artifact folder.

    Raises:
        LowresError: No or invalid metadata, or an unfinished run (:data:`UNFINISHED_FILE` present),
            whose files may mix an old finished run with a new one.
    """
    if (Path(directory) / UNFINISHED_FILE).exists():
        raise LowresError(f"{directory}: unfinished run ({UNFINISHED_FILE} is present); finish it with "
                          f"`lowres adapt ... --resume -o {directory}` or start it again")
    path = Path(directory) / METADATA_FILE
    if not path.exists():
        raise LowresError(f"{path}: not found; expected an adapter folder written by lowres-adapters")
    try:
        values = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LowresError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(values, dict):
        raise LowresError(f"{path}: expected a JSON object")
    return ArtifactMetadata.from_json(values, where=str(path))


def read_tensors(directory: Path) -> dict[str, Any]:
    """Read ``adapter.safetensors`` (no pickle), with one clear line if it is corrupt."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.exists():
        raise LowresError(f"{path}: not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise LowresError(f"{path}: corrupt safetensors file ({error})") from None


def build_config(metadata: ArtifactMetadata, registry: Registry | None = None) -> tuple[Any, Any]:
    """Resolve the adapter type by registered name and build its config.

    Returns:
        ``(adapter_type_spec, config)``.

    Raises:
        LowresError: When the type is not installed (naming the pip package from ``plugin``).
    """
    registry = registry or get_registry()
    if metadata.adapter_type not in registry.names("adapter_types"):
        requirement = pip_requirement(metadata.plugin)
        hint = f": pip install {requirement}" if requirement else ""
        raise LowresError(f"adapter type {metadata.adapter_type!r} is not installed{hint}")
    spec = registry.adapter_type(metadata.adapter_type)
    config = config_from_dict(spec.config_class, metadata.adapter_config,
                              where=f"{METADATA_FILE} adapter_config")
    return spec, config


def pip_requirement(text: Any) -> str | None:
    """Return ``text`` as a shell-safe pip requirement (PEP 508 name, optional extras and version), else None.

    ``plugin`` comes from a downloaded file: a URL, an environment marker or anything with shell
    metacharacters gives no hint at all, so no command is ever echoed verbatim.
    """
    if not isinstance(text, str) or len(text) > 200 or any(char.isspace() for char in text):
        return None
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    if requirement.url or requirement.marker:
        return None
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    rebuilt = f"{requirement.name}{extras}{requirement.specifier}"  # rebuilt from the parsed parts only
    return rebuilt if re.fullmatch(r"[A-Za-z0-9._=-]+", rebuilt) else shlex.quote(rebuilt)


def check_shapes(expected: Mapping[str, Any], found: Mapping[str, Any], where: str) -> None:
    """Raise one clear line when saved tensors do not match the attached adapter's shapes."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise LowresError(f"{where}: adapter tensors do not match this base model ({'; '.join(detail)})")
    for key, tensor in expected.items():
        if tuple(tensor.shape) != tuple(found[key].shape):
            raise LowresError(
                f"{where}: tensor {key} has shape {tuple(found[key].shape)}, the base model needs "
                f"{tuple(tensor.shape)}: the adapter was trained on a different base model"
            )


def attach_from_artifact(model: Any, directory: Path, registry: Registry | None = None) -> Any:
    """Attach the adapter stored in ``directory`` to ``model`` and activate it.

    The base model's vocabulary must already match the artifact's (see ``vocabulary``); shapes are
    checked before any weight is loaded.

    Returns:
        The :class:`~lowres_adapters.specs.AttachedAdapter` handle.
    """
    directory = Path(directory)
    metadata = read_metadata(directory)
    spec, config = build_config(metadata, registry)
    tensors = read_tensors(directory)
    adapter_tensors = {k: v for k, v in tensors.items() if not k.startswith("lowres.")}
    handle = spec.attach(model, metadata.adapter_name, config)
    check_shapes(handle.adapter_state_dict(), adapter_tensors, str(directory / WEIGHTS_FILE))
    handle.load_adapter_state_dict(adapter_tensors)
    handle.activate()
    handle.model.eval()
    return handle


def describe_config(spec: Any, config: Any, registry: Registry | None = None) -> dict[str, Any]:
    """Return ``{"type", "config", "plugin"}`` for a config, as serialised configs carry them."""
    registry = registry or get_registry()
    return {
        "type": spec.name,
        "config": config_to_dict(config),
        "plugin": registry.provider("adapter_types", spec.name).requirement,
        "library_version": __version__,
    }
