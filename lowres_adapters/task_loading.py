"""Rebuild a task run (MAD-X) for inference: base + language adapter(s) + task adapter + head.

A task run folder holds the task adapter (``adapter.safetensors``), its head under
``lowres.head.*`` and ``task_head.json`` (task, kind, labels, head settings). The language
adapters it was stacked on are found in one of two places:

- a published copy (``publish``): ``language_adapters/1/``, ``language_adapters/2/``, ... inside
  the folder, each an artifact folder of its own (metadata, tensors, tokenizer when the first one
  extended the vocabulary), with the fusion kind in ``task_head.json``;
- a local run folder: the folders named in the run's recipe options (``lang_adapter``,
  ``fuse_with``), only when the folder is trusted (a downloaded folder never names local paths).

:func:`load_task_model` returns the pieces; :class:`TaskModel` wraps them into one module whose
forward gives the task's logits and whose ``config.id2label`` names the labels.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from lowres_adapters.artifact import WEIGHTS_FILE, build_config, check_shapes, read_metadata, read_tensors
from lowres_adapters.composition import fuse, stack
from lowres_adapters.configs import config_from_dict
from lowres_adapters.data.examples import TaskData
from lowres_adapters.errors import LowresError
from lowres_adapters.models import load_base_model, load_tokenizer
from lowres_adapters.training.heads import HeadConfig, TaskHead, keep_layers, last_hidden_states
from lowres_adapters.training.task_scoring import predict
from lowres_adapters.training.vocabulary import restore_extended_vocabulary

TASK_HEAD_FILE = "task_head.json"
"""Task name, kind, labels and head settings of a task run folder."""
LANGUAGE_ADAPTERS_DIR = "language_adapters"
"""Where a published task run keeps the language adapters it was stacked on (``1/``, ``2/``, ...)."""


def is_task_folder(directory: Path) -> bool:
    """Return True for a task run folder (one holding :data:`TASK_HEAD_FILE`)."""
    return (Path(directory) / TASK_HEAD_FILE).is_file()


def read_task_description(directory: Path) -> dict[str, Any]:
    """Return ``task_head.json`` as a dict, with one line when it is missing or malformed."""
    path = Path(directory) / TASK_HEAD_FILE
    if not path.is_file():
        raise LowresError(f"{path}: not found; expected a run folder of the task recipe")
    try:
        values = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LowresError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(values, dict) or not isinstance(values.get("labels"), list) or "kind" not in values \
            or not isinstance(values.get("head"), dict):
        raise LowresError(f"{path}: expected an object with kind, labels and head")
    return values


def stack_options(directory: Path, trusted: bool) -> tuple[list[Path], str]:
    """Return ``(language adapter folders, fusion kind)`` a task run was stacked on (possibly none).

    Published copies under :data:`LANGUAGE_ADAPTERS_DIR` come first; otherwise, for a trusted
    folder, the run's recipe options (from ``lowres_adapter.json``) name local run folders.

    Raises:
        LowresError: An untrusted folder that names local language adapters but carries none.
    """
    directory = Path(directory)
    description = read_task_description(directory)
    fusion = description.get("fusion", "dynamic")
    published = directory / LANGUAGE_ADAPTERS_DIR
    if published.is_dir():
        count = sum(1 for entry in published.iterdir() if entry.is_dir() and entry.name.isdigit())
        return [published / str(index) for index in range(1, count + 1)], fusion
    options = (read_metadata(directory).recipe_settings or {}).get("options") or {}
    folders = [options.get("lang_adapter") or "", *(options.get("fuse_with") or ())]
    folders = [Path(str(folder)) for folder in folders if folder]
    if folders and not trusted:
        raise LowresError(f"{directory}: the task adapter was stacked on language adapters that were not "
                          f"published with it ({LANGUAGE_ADAPTERS_DIR}/ is missing); publish it again")
    return folders, options.get("fusion", fusion)


def attach_artifact_adapter(model: Any, directory: Path, rename_to: str | None = None,
                            check: bool = True) -> tuple[Any, dict[str, Any]]:
    """Attach (not load) the adapter of an artifact folder; return ``(handle, its saved tensors)``.

    The saved tensors are checked against the attached adapter's names and shapes first (one line
    when they do not match: another base model, or a damaged download).

    Args:
        model: The model to attach to.
        directory: The artifact / run folder.
        rename_to: A suffix appended to the adapter's name when that name is taken already.
        check: Check the tensors against this adapter alone (off when they belong to a stack or
            fusion built afterwards, which the caller checks).
    """
    metadata = read_metadata(directory)
    spec, config = build_config(metadata)
    name = metadata.adapter_name
    taken = name in getattr(getattr(model, "adapters_config", None) or {}, "adapters", {})
    new_name = f"{name}{rename_to}" if rename_to and taken else name
    tensors = {key: value for key, value in read_tensors(directory).items() if not key.startswith("lowres.")}
    if new_name != name:
        tensors = {".".join(new_name if part == name else part for part in key.split(".")): value
                   for key, value in tensors.items()}
    handle = spec.attach(model, new_name, config)
    if check:
        check_shapes(handle.adapter_state_dict(), tensors, str(Path(directory) / WEIGHTS_FILE))
    return handle, tensors


def attach_language_stack(model: Any, folders: Sequence[Path], fusion: str = "dynamic") -> tuple[Any, Any]:
    """Attach frozen language adapter(s) from artifact folders; return ``(lower handle, tokenizer or None)``.

    The first folder's extended vocabulary, if any, is restored first (its tokenizer is returned).
    Adapters that were trained under the same name are renamed ``<name>_2``, ``<name>_3``, ... so
    they can be fused (AdapterFusion, ``fusion`` = ``dynamic`` or ``static``).
    """
    folders = [Path(folder) for folder in folders]
    for folder in folders:
        if not folder.is_dir():
            raise LowresError(f"{folder}: language adapter folder not found (a run folder of `lowres adapt`)")
    tokenizer = restore_extended_vocabulary(model, folders[0])
    handles = []
    for index, folder in enumerate(folders):
        handle, tensors = attach_artifact_adapter(model, folder, rename_to=None if index == 0 else f"_{index + 1}")
        handle.load_adapter_state_dict(tensors)
        handle.activate()
        handles.append(handle)
    if len(handles) == 1:
        return handles[0], tokenizer
    return fuse(handles, fusion), tokenizer


def load_task_model(run_dir: Path, model: Any = None, *, trusted: bool = True) -> tuple[Any, Any, Any, Any]:
    """Rebuild a trained task model: base + language adapter(s) + task adapter + head.

    Args:
        run_dir: The task run folder (or its published copy).
        model: The base model to use; loaded from the artifact's ``base_model`` when None.
        trusted: False for a downloaded folder: language adapters must then be published inside it.

    Returns:
        ``(model to call, head, tokenizer, task)`` where ``task`` has the kind and labels (no
        examples); predict with :func:`lowres_adapters.training.task_scoring.predict`.
    """
    handle, head, tokenizer, task = load_task_stack(run_dir, model, trusted=trusted)
    return handle.model, head, tokenizer, task


def load_task_stack(run_dir: Path, model: Any = None, *, trusted: bool = True) -> tuple[Any, Any, Any, Any]:
    """Do what :func:`load_task_model` does but return the adapter handle (the stack, when there is
    one) instead of its model: ``(handle, head, tokenizer, task)``."""
    run_dir = Path(run_dir)
    metadata = read_metadata(run_dir)
    description = read_task_description(run_dir)
    folders, fusion = stack_options(run_dir, trusted)
    tokenizer = None
    if model is None:
        model, tokenizer = load_base_model(metadata.base_model)
    lower = None
    if folders:
        lower, extended = attach_language_stack(model, folders, fusion)
        tokenizer = extended or tokenizer
    elif metadata.vocabulary:  # a task adapter on the bare base that extended the vocabulary itself
        tokenizer = restore_extended_vocabulary(model, run_dir) or tokenizer
    feature_layer = (metadata.recipe_settings or {}).get("options", {}).get("feature_layer")
    if feature_layer:  # the run cut the body after this many layers before attaching its task adapter
        keep_layers(model, int(feature_layer))
    upper, tensors = attach_artifact_adapter(model, run_dir, check=False)
    handle = stack(lower, upper, train_lower=len(folders) > 1) if lower is not None else upper
    check_shapes(handle.adapter_state_dict(), tensors, str(run_dir / WEIGHTS_FILE))
    handle.load_adapter_state_dict(tensors)
    handle.activate()
    head_settings = {"normalize": False, **description["head"]}  # heads saved before it was an option had none
    head = TaskHead(config_from_dict(HeadConfig, head_settings, where=str(run_dir / TASK_HEAD_FILE)))
    head.load_head_state_dict(read_tensors(run_dir))
    head.eval()
    handle.model.eval()
    task = TaskData(kind=description["kind"], labels=tuple(description["labels"]), splits={})
    return handle, head, tokenizer or load_tokenizer(metadata.base_model), task


class TaskModel(torch.nn.Module):
    """A task run as one module: ``model(input_ids, attention_mask).logits`` are the task's logits.

    Logits are ``(batch, labels)`` for sequence classification, ``(batch, seq, labels)`` for token
    classification and ``(batch, seq, 2)`` (start, end) for extractive QA. ``config`` is the
    backbone's config with ``id2label`` / ``label2id`` set to the task's labels; ``labels``,
    ``task_kind``, ``backbone`` and ``head`` are plain attributes.
    """

    def __init__(self, backbone: Any, head: Any, task: Any) -> None:
        super().__init__()
        self.backbone, self.head, self.task = backbone, head, task
        self.labels, self.task_kind = tuple(task.labels), task.kind
        self.config = copy.deepcopy(backbone.config)
        self.config.id2label = dict(enumerate(self.labels))
        self.config.label2id = {label: index for index, label in enumerate(self.labels)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any) -> Any:
        """Return an output whose ``logits`` are the head's on the adapted backbone's last hidden states."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = last_hidden_states(self.backbone, input_ids, attention_mask)
        return SequenceClassifierOutput(logits=self.head(hidden, attention_mask))

    def predict(self, tokenizer: Any, examples: Sequence[Any], **kwargs: Any) -> list[Any]:
        """Return one prediction per example (a label, tags or an answer), as the run scored them."""
        return predict(self.backbone, self.head, tokenizer, self.task, examples, **kwargs)
