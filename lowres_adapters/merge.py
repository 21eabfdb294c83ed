"""Merge an adapter into its base model: a plain transformers folder for deployment.

``lowres merge RUN_DIR OUT`` loads the run as ``load`` does (base, vocabulary rows, trained base
tensors, adapter), folds the adapter into the base weights and saves a full model folder that
``AutoModelForCausalLM.from_pretrained(OUT)`` loads with no adapter library:

- LoRA (AdapterHub ``lora``, PEFT ``peft_lora``): ``W + B A * alpha / r``;
- (IA)^3 (``ia3``, ``peft_ia3``): the learned vectors scale the rows (or columns) of ``W``;
- new vocabulary rows and ``--train-also`` tensors are part of the base already.

Bottleneck adapters, prefixes and soft prompts add computation that no base weight can express:
those types are refused in one line, as are task runs (their head is not a language model).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.models import objective_facts

MERGEABLE_TYPES = ("lora", "ia3", "peft_lora", "peft_ia3")
"""Adapter types whose update is a change of the base's linear weights."""


def check_mergeable(metadata: Any, where: str) -> None:
    """Raise one line when the artifact's adapter cannot be folded into the base weights."""
    if metadata.adapter_type not in MERGEABLE_TYPES:
        raise LowresError(f"{where}: adapter type {metadata.adapter_type!r} adds computation the base weights "
                          f"cannot express, so it cannot be merged; merge supports {', '.join(MERGEABLE_TYPES)} "
                          "(and new vocabulary rows); use load() to run it")
    config = metadata.adapter_config or {}
    if config.get("use_gating") or config.get("use_dora"):
        raise LowresError(f"{where}: a {metadata.adapter_type} adapter with gating or DoRA cannot be merged")


def merged_model(run_dir: str | Path, *, model: str | None = None, allow_pickle: bool = False) -> tuple[Any, Any]:
    """Return ``(plain transformers model, tokenizer)`` with the run's adapter folded into the weights."""
    # lazy: artifact imports safetensors
    from lowres_adapters.artifact import read_metadata
    # lazy: loading imports torch
    from lowres_adapters.loading import load_folder
    # lazy: task_loading imports torch
    from lowres_adapters.task_loading import is_task_folder

    run_dir = Path(run_dir)
    metadata = read_metadata(run_dir)
    if is_task_folder(run_dir):
        raise LowresError(f"{run_dir}: a task run ends in a task head, not a language model; it cannot be merged")
    check_mergeable(metadata, str(run_dir))
    loaded = load_folder(run_dir, model=model, allow_pickle=allow_pickle)
    wrapped = loaded.handle.model
    if hasattr(wrapped, "merge_and_unload"):  # PEFT
        wrapped = wrapped.merge_and_unload()
    else:
        wrapped.merge_adapter(loaded.handle.name)  # AdapterHub: folds into each LoRA/IA3 layer's weight
    return plain_copy(wrapped, metadata.objective), loaded.tokenizer


def plain_copy(model: Any, objective: str = "clm") -> Any:
    """Return a transformers model of ``model``'s class holding its base parameters, without adapter modules.

    Raises:
        LowresError: A base parameter has no value in ``model`` (nothing is guessed).
    """
    # lazy: imports torch
    import torch

    # lazy: imports transformers (and torch)
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    config = type(model.config).from_dict({key: value for key, value in model.config.to_dict().items()
                                           if key != "adapters"})
    config.vocab_size = int(model.get_input_embeddings().weight.shape[0])  # with new vocabulary rows
    auto = AutoModelForMaskedLM if objective_facts(objective).masked else AutoModelForCausalLM
    with torch.device("meta"):
        plain = auto.from_config(config)  # transformers' own class: adapters.init changed the model's class
    state = dict(model.state_dict())
    state.update(_full_vocabulary_tensors(model, plain))
    wanted = plain.state_dict()
    missing = [name for name in wanted if name not in state]
    if missing:
        raise LowresError(f"cannot merge: the adapted model has no value for {missing[0]}")
    plain.load_state_dict({name: state[name].detach().clone() for name in wanted}, assign=True)
    plain.tie_weights()
    return plain.eval()


def _full_vocabulary_tensors(model: Any, plain: Any) -> dict[str, Any]:
    """Return the input embeddings (and output head) of ``model`` under ``plain``'s parameter names.

    An extended vocabulary keeps the original and the new rows apart (``ExtendedEmbedding``);
    their ``weight`` is the concatenated matrix a plain model holds.
    """
    found = {}
    names: dict[int, list[str]] = {}
    for name, parameter in plain.named_parameters(remove_duplicate=False):  # a tied head shares the matrix
        names.setdefault(id(parameter), []).append(name)
    pairs = [(model.get_input_embeddings(), plain.get_input_embeddings())]
    if plain.get_output_embeddings() is not None and model.get_output_embeddings() is not None:
        pairs.append((model.get_output_embeddings(), plain.get_output_embeddings()))
    for source, target in pairs:
        for attribute in ("weight", "bias"):
            value, slot = getattr(source, attribute, None), getattr(target, attribute, None)
            if value is not None and slot is not None and id(slot) in names:
                found.update({name: value.detach() for name in names[id(slot)]})
    return found


def usual_permissions(path: Path, directory: bool = False) -> None:
    """Give a file or folder made by ``tempfile`` (private: 0600 / 0700) the permissions the umask allows."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def merge_run(run_dir: str | Path, output: str | Path, *, model: str | None = None, allow_pickle: bool = False,
              overwrite: bool = False) -> Path:
    """Write the merged model and its tokenizer to ``output`` (a new folder, written under a temporary name).

    Raises:
        LowresError: Unmergeable type, task run, or ``output`` exists (without ``overwrite``).
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise LowresError(f"{output}: exists; choose another output or pass --overwrite")
    merged, tokenizer = merged_model(run_dir, model=model, allow_pickle=allow_pickle)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        usual_permissions(staging, directory=True)
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
