"""Export a merged adapted model as one GGUF file (f16 or f32) for llama.cpp-style runtimes.

``lowres export RUN_DIR --format gguf OUT.gguf`` merges the run (:mod:`lowres_adapters.merge`) and
writes the ``llama`` architecture (SmolLM2, Llama, and models of the same layout) with the
``gguf`` package: hyper-parameters, a byte-level BPE tokenizer (tokens, types, merges, special ids)
and the tensors under GGUF's names. As llama.cpp's own converter does, the query and key
projections are permuted into GGUF's rotary layout (transformers' GGUF reader permutes them back),
1-D tensors (norms) stay float32, and a tied output head is not written twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lowres_adapters.errors import LowresError
from lowres_adapters.merge import merged_model, usual_permissions

GGUF_TYPES = ("f16", "f32")
SUPPORTED_MODEL_TYPES = ("llama",)


def _permute(weights: Any, heads: int) -> Any:
    """Reorder a q/k projection's rows from the Hugging Face rotary layout to GGUF's (llama.cpp ``permute``)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(model: Any, dtype: str) -> dict[str, Any]:
    """Return ``{gguf name: numpy array}`` for a llama-layout transformers model."""
    # lazy: gguf imports numpy and is needed by one command
    import gguf
    # lazy: numpy is needed only here
    import numpy

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or \
        config.num_attention_heads
    tensors = {}
    for name, tensor in state.items():
        if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise LowresError(f"cannot export tensor {name} to GGUF: no llama GGUF name for it")
        array = tensor.detach().float().cpu().numpy()
        if name.endswith("self_attn.q_proj.weight"):
            array = _permute(array, heads)
        elif name.endswith("self_attn.k_proj.weight"):
            array = _permute(array, kv_heads)
        tensors[target] = array.astype(numpy.float16 if dtype == "f16" and array.ndim > 1 else numpy.float32)
    return tensors


def add_tokenizer(writer: Any, tokenizer: Any) -> None:
    """Write a byte-level BPE tokenizer (``tokenizer.ggml.model = gpt2``) with its special tokens."""
    # lazy: gguf imports numpy and is needed by one command
    import gguf

    values = json.loads(tokenizer.backend_tokenizer.to_str()) if getattr(tokenizer, "is_fast", False) else {}
    model = values.get("model") or {}
    if model.get("type") != "BPE":
        raise LowresError("GGUF export needs a fast byte-level BPE tokenizer (as SmolLM2's)")
    vocabulary = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocabulary.items()}
    size = max(by_id) + 1
    special = set(tokenizer.all_special_ids)
    added = {index for index in tokenizer.added_tokens_decoder} - special
    tokens, types = [], []
    for index in range(size):
        tokens.append(by_id.get(index, f"[PAD{index}]"))
        types.append(gguf.TokenType.CONTROL if index in special else gguf.TokenType.USER_DEFINED
                     if index in added else gguf.TokenType.NORMAL if index in by_id else gguf.TokenType.UNUSED)
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attribute, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                           ("unk_token_id", writer.add_unk_token_id), ("pad_token_id", writer.add_pad_token_id)):
        if getattr(tokenizer, attribute, None) is not None:
            add(int(getattr(tokenizer, attribute)))
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: Any, tokenizer: Any, output: Path, dtype: str = "f16", name: str = "") -> Path:
    """Write ``model`` (a plain llama-layout transformers model) and ``tokenizer`` to ``output``, atomically."""
    # lazy: gguf imports numpy and is needed by one command
    import gguf  # lazy: gguf only when exporting

    config = model.config
    if dtype not in GGUF_TYPES:
        raise LowresError(f"--dtype {dtype!r}: expected one of {', '.join(GGUF_TYPES)}")
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise LowresError(f"GGUF export supports {', '.join(SUPPORTED_MODEL_TYPES)} models, not {config.model_type!r}")
    if getattr(config, "rope_scaling", None):
        raise LowresError("GGUF export of a model with rope_scaling is not supported")
    tensors = gguf_tensors(model, dtype)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    os.close(handle)
    try:
        writer = gguf.GGUFWriter(temporary, "llama")
        writer.add_name(name or output.stem)
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        writer.add_rope_dimension_count(head_dim)
        writer.add_head_count(config.num_attention_heads)
        writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_freq_base(float(getattr(config, "rope_theta", 10000.0)))
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        add_tokenizer(writer, tokenizer)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        usual_permissions(Path(temporary))
        os.replace(temporary, output)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return output


def export_run(run_dir: str | Path, output: str | Path, *, dtype: str = "f16", model: str | None = None,
               allow_pickle: bool = False, overwrite: bool = False) -> Path:
    """Merge the run's adapter into its base and write it as GGUF (``f16`` or ``f32``).

    Raises:
        LowresError: An adapter that cannot merge, an architecture other than llama, or an existing output.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise LowresError(f"{output}: exists; choose another output or pass --overwrite")
    if dtype not in GGUF_TYPES:
        raise LowresError(f"--dtype {dtype!r}: expected one of {', '.join(GGUF_TYPES)}")
    merged, tokenizer = merged_model(run_dir, model=model, allow_pickle=allow_pickle)
    return write_gguf(merged, tokenizer, output, dtype, name=Path(run_dir).name)
